"""The web page in a real headless Chromium (Debian's `chromium`, driven by Playwright): ask, see answers, vote."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlops.serving.feedback import FeedbackStore
from mlops.triton.server import TritonServer
from support.package import OFF_TOPIC_QUESTION
from support.services import ApiProcess

CHROMIUM = "/usr/bin/chromium"
# Without the networking flags Chromium keeps trying to reach Google and is refused by this closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_ask_see_answers_and_vote_in_chromium(qa_triton: TritonServer, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing (Debian package `chromium`): run `make system-deps`")
    api = ApiProcess(qa_triton.http_url, tmp_path / "home")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(api.url + "/")
            page.fill("#question", "How do I make my runs reproducible with a fixed random seed?")
            page.click("#ask")
            answers = page.locator("li.answer")
            expect(answers).to_have_count(5, timeout=30_000)
            first = answers.nth(0)
            expect(first.locator(".symbol")).to_have_text("minilib.training.set_seed")
            expect(first.locator(".source")).to_contain_text("minilib/training.py:")
            expect(first.locator(".text")).to_contain_text("random seed")
            expect(page.locator("#status")).to_contain_text("model version 1")

            first.get_by_role("button", name="thumbs down for minilib.training.set_seed").click()
            expect(first.locator(".thanks")).to_contain_text("feedback #")
            page.screenshot(path=str(tmp_path / "page.png"))

            # a question it should refuse: no answers, and the page says why
            page.fill("#question", OFF_TOPIC_QUESTION)
            page.click("#ask")
            expect(page.locator("#status")).to_contain_text("No confident answer from model version 1", timeout=30_000)
            expect(page.locator("#status")).to_contain_text("is it about the library?")
            expect(answers).to_have_count(0)
            browser.close()
    finally:
        api.kill()

    rows = list(FeedbackStore(f"sqlite:///{tmp_path / 'home' / 'feedback.db'}").export())
    assert [(r["symbol"], r["rating"], r["model_version"]) for r in rows] == [("minilib.training.set_seed", "down", "1")]
    assert rows[0]["question"] == "How do I make my runs reproducible with a fixed random seed?"
