"""The steps glued together: `mlops data`, `mlops register`, and `mlops pipeline` (all five, timed)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.data import dataset, labelled, links
from mlops.data.corpus import Symbol, extract_symbols, installed_package_root
from mlops.data.eval_sets import NATURAL_DEV, NATURAL_FRESH, NATURAL_QUESTIONS, OFF_TOPIC_SETS, load_natural_questions, load_off_topic_questions
from mlops.data.feedback import FeedbackRow, parse_rows, read_export
from mlops.evaluation.evaluate import evaluate
from mlops.evaluation.gate import GateConfig
from mlops.lifecycle import registry, tracking
from mlops.lifecycle.deploy import deploy
from mlops.training.config import TrainConfig
from mlops.training.train import train

# The `mlops` commands of one release, in order. `mlops pipeline` runs STEPS here (its deploy serves the
# model on this machine, so it also moves `champion`); the Argo workflow
# (workflows/train-evaluate-register-deploy.yaml) runs the same commands, its deploy only testing the
# version, then CLUSTER_STEPS to ship it: publish, commit, wait for ArgoCD, smoke-test staging, and only
# then move `champion`. tests/deploy/workflows/test_workflows.py fails if the two drift apart.
STEPS = ("data", "train", "evaluate", "register", "deploy")
CLUSTER_STEPS = ("publish", "promote", "gitops wait", "smoke", "champion")


def read_symbols(source: Path | None, echo=print) -> tuple[Path, list[Symbol]]:
    """The symbols of the package at ``source`` (default: the installed transformers), read with ``ast``."""
    root = Path(source) if source else installed_package_root()
    echo(f"reading {root}")
    with tqdm(desc="parsing source files", unit="file", leave=False, mininterval=1.0) as bar:

        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        symbols, failures = extract_symbols(root, progress=advance)
    for failure in failures:
        echo(f"  skipped (does not parse): {failure}")
    return root, symbols


def evaluation_questions(settings: Settings) -> list[str]:
    """The hand-written evaluation questions, in-domain and off-topic: no labelled question, feedback or review may be
    (near) one of them."""
    natural = [q.question for path in (settings.natural_questions or NATURAL_QUESTIONS, settings.natural_dev or NATURAL_DEV,
                                       NATURAL_FRESH) for q in load_natural_questions(path)]
    return natural + [q.question for path in OFF_TOPIC_SETS.values() for q in load_off_topic_questions(path)]


def checked_labelled_set(settings: Settings, corpus: dict[str, Symbol], folder: Path, missing_ok: bool, echo=print) -> list:
    """The labelled questions, every rule checked against this corpus and the evaluation sets; one error if any breaks."""
    entries = labelled.load_labelled(folder)
    found = labelled.problems(entries, corpus, evaluation_questions(settings), missing_ok=missing_ok)
    for line in found:
        echo(f"  {line}")
    if found:
        raise MlopsError(f"{len(found)} labelled questions break the rules (listed above); fix them in {folder}")
    return entries


def read_feedback(feedback: str) -> list[FeedbackRow]:
    """Stored feedback: from a feedback database URL (what the API's DATABASE_URL names) or an export file."""
    if "://" not in feedback:
        return read_export(Path(feedback))
    from mlops.serving.feedback import FeedbackStore, StoreUnavailable

    store = FeedbackStore(feedback)
    try:
        return parse_rows(store.export())
    except StoreUnavailable as exc:
        raise MlopsError(f"cannot read the feedback: {exc}") from None
    finally:
        store.close()


def docs_source(settings: Settings, root: Path, docs: Path | None) -> Path | None:
    """The transformers docs source to link symbols to: ``docs`` when given (it must exist), else the cache's copy for
    the package's tag (``<cache>/transformers-docs/<tag>``, ``make docs-source``) when there is one."""
    if docs is not None:
        if not Path(docs).is_dir():
            raise MlopsError(f"--docs {docs} is not a folder; pass docs/source/en of a transformers checkout at the installed tag")
        return Path(docs)
    version = links.package_version(root)
    cached = settings.cache_dir / "transformers-docs" / links.release_ref(version) if version else None
    return cached if cached is not None and cached.is_dir() else None


def build_data(settings: Settings, source: Path | None, echo=print, feedback: str | None = None, docs: Path | None = None) -> str:
    root, symbols = read_symbols(source, echo)
    symbols, package = links.with_links(symbols, root, docs_source(settings, root, docs))
    if package["version"]:
        echo(f"links: {package['package']} {package['version']} on GitHub at {package['ref']}; "
             + (f"{package['documented']} symbols in the docs source {package['docs']}" if package["docs"] else
                "no docs source (make docs-source), so no documentation links"))
    corpus = {s.symbol: s for s in dataset.dedupe_symbols(symbols)}
    entries = checked_labelled_set(settings, corpus, labelled.LABELLED_DIR, missing_ok=True, echo=echo)
    rows = read_feedback(feedback) if feedback else []
    dataset_hash, manifest = dataset.build_dataset(symbols, settings.datasets_dir, source=str(root), labelled_set=entries,
                                                   feedback=rows, held_out=evaluation_questions(settings), package=package)
    if feedback:
        left_out = ", ".join(f"{n} {why}" for why, n in manifest["feedback_left_out"].items()) or "none"
        echo(f"feedback: {len(rows)} ratings, {manifest['pairs']['feedback']} training pairs, {manifest['off_topic']} off-topic examples"
             f" (left out: {left_out})")
    echo(f"dataset {dataset_hash}: {manifest['symbols']} symbols, pairs {manifest['splits']} (rules {manifest['rules']}, "
         f"{manifest['pairs']['labelled']} labelled pairs from {len(entries)} labelled questions, "
         f"{manifest['pairs']['ambiguous']} ambiguous dropped; {manifest['expansion']['symbols']} train-split symbols index"
         f" {manifest['expansion']['questions']} labelled questions) in {settings.datasets_dir / dataset_hash}")
    return dataset_hash


def check_labelled(settings: Settings, source: Path | None, folder: Path = labelled.LABELLED_DIR, echo=print) -> dict:
    """Validate the labelled set against the corpus and the evaluation sets; its coverage, or one error per broken rule."""
    _, symbols = read_symbols(source, echo)
    corpus = {s.symbol: s for s in dataset.dedupe_symbols(symbols)}
    entries = checked_labelled_set(settings, corpus, folder, missing_ok=False, echo=echo)
    report = labelled.coverage(entries, corpus.values())
    echo(f"labelled set {folder}: {report['questions']} questions; of {report['targets']} symbols to cover, {report['none']} have none,"
         f" {report['one_or_two']} one or two, {report['three_or_more']} three or more; of all {report['corpus']['symbols']}"
         f" symbols, {report['corpus']['none']} have none")
    return report


def register_run(settings: Settings, run_id: str | None, echo=print) -> str:
    client = tracking.configure(settings)
    run_id = run_id or tracking.latest_training_run(client).info.run_id
    version = registry.register(client, settings.model_name, run_id)
    echo(f"registered {settings.model_name} version {version.version} from run {run_id}; alias 'candidate' -> {version.version}")
    return str(version.version)


@contextmanager
def _stage(name: str, times: dict[str, float], echo):
    echo(f"==> {name}")
    started = time.perf_counter()
    try:
        yield
    finally:
        times[name] = time.perf_counter() - started
        echo(f"<== {name}: {times[name]:.1f}s")


def run_pipeline(settings: Settings, source: Path | None = None, max_steps: int | None = None, echo=print,
                 docs: Path | None = None) -> None:
    times: dict[str, float] = {}
    try:
        with _stage("data", times, echo):
            dataset_hash = build_data(settings, source, echo, docs=docs)
        with _stage("train", times, echo):
            run_id = train(settings, TrainConfig(max_steps=max_steps), dataset_hash, echo)
        with _stage("evaluate", times, echo):
            evaluate(settings, run_id, GateConfig(), echo)
        with _stage("register", times, echo):
            version = register_run(settings, run_id, echo)
        with _stage("deploy", times, echo):
            deploy(settings, version, echo)
    finally:
        total = sum(times.values())
        echo("stage times: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()) + f"; total {total:.0f}s")
