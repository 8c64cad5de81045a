"""The command line as a user meets it: bad input ends in one clear line and a non-zero exit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.triton.server import free_ports
from support.cli import MLOPS, assert_clean_error, invoke, run
from support.package import symbols_by_split


@pytest.mark.parametrize(("args", "message"), [
    (["ask", ""], "the question is empty"),
    (["ask", "   "], "the question is empty"),
    (["ask", "x" * 2001], "keep it under 2000"),
    (["ask", "How do I save a model?"], "no model has been deployed yet"),
    (["ask", "How do I save a model?", "--top-k", "0"], "top_k must be between 1 and 50, got 0"),
    (["data", "--source", "/nonexistent/transformers"], "does not exist or is not a folder"),
    (["train"], "no dataset"),
    (["train", "--batch-size", "1"], "--batch-size"),
    (["evaluate"], "no finished training run"),
    (["evaluate", "--metric", "accuracy"], "--metric"),
    (["register", "--run", "0123456789abcdef"], "no MLflow run"),
    (["deploy", "--version", "7"], "has no version '7'"),
    (["deploy"], "has no 'candidate' version"),
    (["champion", "--version", "7"], "has no version '7'"),
    (["publish", "--version", "7"], "has no version '7'"),
    (["publish", "--store", "ftp://models"], "is not an s3://BUCKET URI"),
    (["smoke", "--url", "127.0.0.1:8080", "--version", "3"], "is not an http(s) URL"),
    (["sync-alias", "--env", "qa"], "unknown environment 'qa'; use one of dev, staging, prod"),
    (["serve"], "no model has been deployed yet"),
    (["serve", "--port", "70000"], "--port must be between 1 and 65535, got 70000"),
    (["smoke", "--url", "http://127.0.0.1:1", "--version", "3", "--timeout", "-1"], "--timeout must be at least 0"),
    (["bench"], "no model has been deployed yet"),
    (["simulate", "--url", "qa.example.org"], "is not an http(s) URL"),
    (["simulate", "--url", "http://127.0.0.1:1"], "http://127.0.0.1:1 is unreachable"),
    (["simulate", "--url", "http://127.0.0.1:1", "--count", "0"], "--count must be between 1 and 10000, got 0"),
])
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], message: str):
    assert_clean_error(invoke(*args, home=tmp_path / "home"), message)


@pytest.mark.parametrize(("args", "message"), [
    (["ask", ""], "the question is empty"),   # before anything heavy is loaded
    (["deploy"], "has no 'candidate' version"),  # after MLflow answered
])
def test_the_installed_command_ends_bad_input_in_one_clear_line(tmp_path: Path, args: list[str], message: str):
    assert_clean_error(run(*args, home=tmp_path / "home"), message)


def test_data_on_an_empty_tree(tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    assert_clean_error(invoke("data", "--source", str(tmp_path / "pkg"), home=tmp_path / "home"), "no Python files found")
    assert not (tmp_path / "home" / "datasets" / "LATEST").exists()


def test_data_prints_the_dataset_hash(tmp_path: Path, mini_package: Path):
    result = run("data", "--source", str(mini_package), home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    dataset_hash = result.stdout.strip()
    assert (tmp_path / "home" / "datasets" / dataset_hash / "manifest.json").is_file()
    manifest = json.loads((tmp_path / "home" / "datasets" / dataset_hash / "manifest.json").read_text())
    assert manifest["symbols"] == 41 and manifest["hash"] == dataset_hash


def test_data_trains_on_stored_thumbs_up_and_reviews_and_its_hash_moves_only_with_them(tmp_path: Path, mini_package: Path,
                                                                                     monkeypatch: pytest.MonkeyPatch):
    from mlops.core.settings import Settings
    from mlops.data import dataset
    from mlops.pipeline import build_data
    from mlops.serving.feedback import FeedbackStore

    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    settings, lines = Settings.from_env(), []
    train_symbols = symbols_by_split(mini_package)["train"]
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    store = FeedbackStore(url)  # the API's store (POST /v1/feedback)
    up = store.add(question="my training keeps starting from zero after a crash", symbol=train_symbols[0], rating="up", model_version="1")
    with_up = run("data", "--source", str(mini_package), "--feedback", url, home=home)
    assert with_up.returncode == 0, with_up.stderr
    assert "feedback: 1 ratings, 1 training pairs, 0 off-topic examples (left out: none)" in with_up.stderr
    pairs = [json.loads(line) for line in (home / "datasets" / with_up.stdout.strip() / "train.jsonl").read_text().splitlines()]
    assert [(p["symbol"], p["rule"]) for p in pairs if p["source"] == f"feedback:{up}"] == [(train_symbols[0], "feedback")]
    assert with_up.stdout.strip() != build_data(settings, mini_package, echo=lambda *_: None)  # without feedback
    down = store.add(question="which piece pads my batches to one length", symbol=train_symbols[1], rating="down", model_version="1")
    odd = store.add(question="what should I cook tonight", symbol=train_symbols[2], rating="down", model_version="1")
    assert build_data(settings, mini_package, echo=lines.append, feedback=url) == with_up.stdout.strip()  # thumbs-down alone
    assert any("2 thumbs-down (waits for review)" in line for line in lines)
    # An annotator's decisions (mlops review) make a pair and an off-topic example, and a new dataset.
    store.add_review([down], reviewer="ana", decision="symbol", symbol="minilib.data.collators.PaddingCollator")
    store.add_review([odd], reviewer="ana", decision="off-topic")
    store.close()
    reviewed = build_data(settings, mini_package, echo=lambda *_: None, feedback=url)
    folder = home / "datasets" / reviewed
    assert reviewed != with_up.stdout.strip()
    assert [(p.question, p.symbol, p.source) for p in dataset.load_split(folder, "train") if p.rule == "review"] == [
        ("which piece pads my batches to one length", "minilib.data.collators.PaddingCollator", f"review:{down}")]
    assert [(q.question, q.source) for q in dataset.load_off_topic(folder)] == [("what should I cook tonight", f"review:{odd}")]
    assert build_data(settings, mini_package, echo=lambda *_: None, feedback=url) == reviewed  # the same decisions, the same hash


def test_serve_on_a_busy_port(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_clean_error(run("serve", "--port", str(port), home=tmp_path / "home"), f"API port {port} on 127.0.0.1 is not available")


def test_serve_with_a_bad_database_url(tmp_path: Path):
    environment = {**os.environ, "MLOPS_HOME": str(tmp_path / "home"), "DATABASE_URL": "postgresql://qa@127.0.0.1:1/none"}
    result = subprocess.run([MLOPS, "serve", "--triton-url", "127.0.0.1:1", "--port", str(free_ports(1)[0])], capture_output=True,
                            text=True, env=environment, timeout=120)
    assert_clean_error(result, "feedback database postgresql+psycopg://qa@127.0.0.1:1/none is unreachable")


def test_stdout_holds_only_the_result_whatever_else_writes_there():
    """Libraries (print), C code (fd 1) and child processes all write while a command runs; only its result reaches stdout."""
    program = (
        "import os, subprocess, sys\n"
        "from mlops.cli import app, main\n"
        "from mlops.core.results import result\n"
        "@app.command('noisy')\n"
        "def noisy():\n"
        "    print('a library prints')\n"
        "    os.write(1, b'C code writes to fd 1\\n')\n"
        "    subprocess.run(['sh', '-c', 'echo a child process writes'])\n"
        "    result('the-result')\n"
        "    print('more after the result')\n"
        "sys.argv = ['mlops', 'noisy']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the-result\n"
    for noise in ("a library prints", "C code writes to fd 1", "a child process writes", "more after the result"):
        assert noise in done.stderr


def test_results_page_prints_the_page_it_wrote(tmp_path: Path):
    environment = {**os.environ, "MLOPS_HOME": str(tmp_path / "home")}
    done = subprocess.run([MLOPS, "results-page", "--out", str(tmp_path / "results.md")], capture_output=True, text=True,
                          env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "results.md")
    assert "No evaluation report" in (tmp_path / "results.md").read_text()
    done = subprocess.run([MLOPS, "results-page", "--report", str(tmp_path / "none.json")], capture_output=True, text=True,
                          env=environment, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [f"error: --report {tmp_path / 'none.json'}: no such file"]


def test_labelled_checks_the_set_and_prints_its_coverage(tmp_path: Path, mini_package: Path):
    folder = tmp_path / "labelled"
    folder.mkdir()
    good = {"question": "My run died halfway; how do I keep what the optimizer had learned so far?",
            "symbols": ["minilib.training.Trainer.save_checkpoint"], "author": "test", "written": "2026-12-02", "rule": "labelled"}
    (folder / "a.yaml").write_text(json.dumps({"questions": [good]}))
    done = run("labelled", "--source", str(mini_package), "--folder", str(folder), home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["questions"] == 1 and report["targets"] == report["none"] + report["one_or_two"] + report["three_or_more"]
    bad = {**good, "question": "When should I call save_checkpoint during training?"}
    (folder / "a.yaml").write_text(json.dumps({"questions": [good, bad]}))
    done = run("labelled", "--source", str(mini_package), "--folder", str(folder), home=tmp_path / "home")
    assert "names the symbol (save_checkpoint)" in done.stderr
    assert_clean_error(done, "1 labelled questions break the rules (listed above)")


def test_a_folder_the_user_cannot_write_is_one_clear_line(tmp_path: Path, mini_package: Path, pod_user):
    """As the images' user (uid 1000), with MLOPS_HOME made by root: the case of a mount the runtime made."""
    if pod_user is None:
        pytest.skip("this machine cannot run a command as another user (see the warning)")
    from support.pod_user import can_traverse

    home = tmp_path / "home"
    home.mkdir()
    can_traverse(mini_package)
    done = subprocess.run([str(pod_user.mlops), "data", "--source", str(mini_package)], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MLOPS_HOME": str(home)}, **pod_user.run_kwargs())
    assert_clean_error(done, f"permission denied on {home}")
