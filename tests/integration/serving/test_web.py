"""The web page in a real headless Chromium (Debian's `chromium`, driven by Playwright): ask with the keyboard, read
the answer view (signature, highlight, rendered documentation, example, links, icons), vote, see an error; axe-core
checks accessibility; screenshots of an answer and of an error state are written."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlops.serving.feedback import FeedbackStore
from mlops.triton.server import TritonServer, free_ports
from support.package import OFF_TOPIC_QUESTION, SET_SEED, SET_SEED_DOCS_URL, SET_SEED_SOURCE_URL
from support.paths import ROOT
from support.services import ApiProcess

CHROMIUM = "/usr/bin/chromium"
# Without the networking flags Chromium keeps trying to reach Google and is refused by this closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# axe-core from npm (`make tools` fetches the pinned version), served to the page from its own origin.
AXE = ROOT / ".tools" / "axe-core" / "axe.min.js"
QUESTION = "How do I make my runs reproducible with a fixed random seed?"
# Where the screenshots also go when set (the README's is of the real champion: docs/operations.md#serving-the-http-api).
SCREENSHOTS = os.environ.get("MLOPS_SCREENSHOTS")


def _screenshot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / name, Path(SCREENSHOTS) / name)


def _axe_violations(page, url: str) -> list[dict]:
    page.route(url + "/axe.min.js", lambda route: route.fulfill(path=str(AXE), content_type="text/javascript"))
    page.add_script_tag(url=url + "/axe.min.js")  # same origin: the page's Content-Security-Policy allows it
    return page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                         ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.html)}))")


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing (Debian package `chromium`): run `make system-deps`")
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing (axe-core from npm): run `make tools`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_ask_with_the_keyboard_read_the_answer_view_and_vote(browser, qa_triton: TritonServer, tmp_path: Path):
    from playwright.sync_api import expect

    api = ApiProcess(qa_triton.http_url, tmp_path / "home")
    try:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=api.url)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(api.url + "/")
        title = page.title()

        # The keyboard alone: Tab reaches the question first, then the Ask button; Enter asks.
        page.keyboard.press("Tab")
        expect(page.locator("#question")).to_be_focused()
        page.keyboard.type(QUESTION)
        page.keyboard.press("Tab")
        expect(page.locator("#ask")).to_be_focused()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Enter")

        answers = page.locator("li.answer")
        expect(answers).to_have_count(5, timeout=30_000)
        expect(page.locator("#status")).to_contain_text("model version 1")
        first = answers.nth(0)
        expect(first.locator("code.symbol")).to_have_text(SET_SEED)
        expect(first.locator("code.signature")).to_have_text("(*args, **kwargs)")
        expect(first.locator(".source")).to_contain_text("minilib/training.py:")
        # the highlight: the deployed model's best sentence, in a <mark>, in the lead and in the documentation
        lead = first.locator(".highlight mark")
        expect(lead).to_have_text("Sets the random seed of python, numpy and torch so that runs are reproducible.")
        expect(first.locator(".highlight .summary")).to_have_count(0)  # the summary is the highlight here
        # offsets count characters (code points, as Python does): a 🤗 before the sentence shifts nothing; a highlight
        # that is not the summary follows it
        lead = {"text": "🤗 Hub helper. Saves it to the Hub.", "summary": {"start": 0, "end": 13}, "highlight": {"start": 14, "end": 34}}
        assert page.evaluate("answer => highlight(answer).textContent", lead) == "🤗 Hub helper. … Saves it to the Hub."
        # the links, as the corpus gives them
        expect(first.get_by_role("link", name="Source on GitHub")).to_have_attribute("href", SET_SEED_SOURCE_URL)
        expect(first.get_by_role("link", name="Documentation")).to_have_attribute("href", SET_SEED_DOCS_URL)
        # the example: a code block, and its copy button copies the runnable code
        expect(first.locator(".example pre code")).to_have_text("from minilib.training import set_seed\nset_seed(42)")
        first.get_by_role("button", name=f"Copy the example of {SET_SEED}").click()
        expect(first.locator(".copied")).to_have_text("copied")
        assert page.evaluate("navigator.clipboard.readText()") == "from minilib.training import set_seed\nset_seed(42)"
        # the documentation: rendered Markdown, opened with the keyboard
        first.locator("details.docs summary").focus()
        page.keyboard.press("Enter")
        docs = first.locator(".docs-body")
        expect(docs).to_be_visible()
        expect(docs.locator("em").first).to_have_text("before")
        expect(docs.locator("li strong").first).to_have_text("seed")
        expect(docs.locator("blockquote")).to_contain_text("Warning")
        expect(docs.locator("blockquote")).to_contain_text("Seeding alone does not make GPU kernels deterministic.")
        expect(docs.locator("mark")).to_have_text("Sets the random seed of python, numpy and torch so that runs are reproducible.")
        expect(docs.get_by_role("link", name="the reproducibility guide")).to_have_attribute(
            "href", "https://example.org/docs/minilib/v1.0.0/en/reproducibility")
        expect(docs).to_contain_text('<script>document.title = "pwned"</script>')  # shown as text, never run
        assert page.title() == title and docs.locator("script").count() == 0
        # icons: inline SVG drawn at a real size, so no emoji font is needed
        for name in ("thumbs up", "thumbs down"):
            box = first.get_by_role("button", name=f"{name} for {SET_SEED}").locator("svg").bounding_box()
            assert box and box["width"] >= 10 and box["height"] >= 10
        assert first.locator("svg use").count() >= 5
        _screenshot(page, tmp_path, "answer.png")

        violations = _axe_violations(page, api.url)
        assert violations == [], violations

        first.get_by_role("button", name=f"thumbs down for {SET_SEED}").press("Enter")
        expect(first.locator(".thanks")).to_contain_text("feedback #")

        # a question it should refuse: no answers, and the page says why
        page.fill("#question", OFF_TOPIC_QUESTION)
        page.press("#question", "Enter")
        expect(page.locator("#status")).to_contain_text("No confident answer from model version 1", timeout=30_000)
        expect(page.locator("#status")).to_contain_text("is it about the library?")
        expect(answers).to_have_count(0)
        assert errors == [], errors
    finally:
        api.kill()

    rows = list(FeedbackStore(f"sqlite:///{tmp_path / 'home' / 'feedback.db'}").export())
    assert [(r["symbol"], r["rating"], r["model_version"]) for r in rows] == [(SET_SEED, "down", "1")]
    assert rows[0]["question"] == QUESTION


def test_an_unreachable_triton_shows_one_error_line(browser, tmp_path: Path):
    from playwright.sync_api import expect

    api = ApiProcess(f"127.0.0.1:{free_ports(1)[0]}", tmp_path / "home")  # nothing listens there
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 500})
        page.goto(api.url + "/")
        page.fill("#question", QUESTION)
        page.press("#question", "Enter")
        status = page.locator("#status.error")
        expect(status).to_contain_text("Error: Triton at 127.0.0.1:", timeout=30_000)
        expect(status).to_contain_text("is unreachable")
        expect(page.locator("li.answer")).to_have_count(0)
        _screenshot(page, tmp_path, "error.png")
        assert _axe_violations(page, api.url) == []
    finally:
        api.kill()
