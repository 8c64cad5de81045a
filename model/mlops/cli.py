"""`mlops`: one command line for every step, used alike by `make pipeline`, Argo steps and people.

Errors a user can fix (MlopsError) print as one line and exit non-zero; no stack traces. stdout holds
only a command's result (mlops.core.results); progress goes to stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer  # noqa: E402

from mlops.bench.config import BenchConfig  # noqa: E402
from mlops.core.errors import PROCESSES_LOST, MlopsError  # noqa: E402
from mlops.core.inputs import DEFAULT_TOP_K, MAX_TOP_K  # noqa: E402
from mlops.core.results import RESULT_FILE, result, stdout_holds_only_results  # noqa: E402
from mlops.core.settings import Settings  # noqa: E402
from mlops.evaluation.gate import GateConfig  # noqa: E402
from mlops.training.config import TrainConfig, TuneConfig  # noqa: E402

app = typer.Typer(
    help="Question answering over the Transformers codebase: data -> train -> evaluate -> register -> deploy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def echo(message: str) -> None:
    typer.echo(message, err=True)  # progress on stderr; stdout is the result


# A worker re-launched under torchrun writes its exit code here when it ends with an error of the command's own (the
# same on a retry): torchrun exits 1 for any failed worker, so the launcher tells these from a worker killed or
# crashed (out of memory, a lost node; its peers then fail in their collectives), which a retry may get past.
EXIT_FILE = "MLOPS_EXIT_FILE"


def _run(step, *args, **kwargs):
    """Run a step; a user-fixable error becomes one line on stderr and the error's exit code."""
    try:
        return step(*args, **kwargs)
    except MlopsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(_exiting(exc.exit_code)) from None
    except PermissionError as exc:  # a folder another user made: MLOPS_HOME, a mount, a clone
        typer.secho(f"error: permission denied on {exc.filename}: this user (uid {os.getuid()}) cannot write there; "
                    "give it the folder, or set MLOPS_HOME to one it owns", fg=typer.colors.RED, err=True)
        raise typer.Exit(_exiting(1)) from None
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        raise typer.Exit(_exiting(130)) from None


def _exiting(code: int) -> int:
    if os.environ.get(EXIT_FILE):
        Path(os.environ[EXIT_FILE]).write_text(str(code))
    return code


def _default(model, field: str) -> str:
    """The config model's default, for an option's help: the model owns it, the option says None."""
    return f"default {model.model_fields[field].default}"


def _options(model, **values):
    """The step's pydantic config from the options given (None: the model's default); a bad one is a usage error (exit 2)."""
    from pydantic import ValidationError

    try:
        return model(**{name: value for name, value in values.items() if value is not None})
    except ValidationError as exc:
        problem = exc.errors()[0]
        typer.secho(f"error: --{str(problem['loc'][0]).replace('_', '-')}: {problem['msg']}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _check_range(option: str, value: float, low: float, high: float | None = None) -> None:
    """A number outside its range is a usage error in the same one-line form as every other error."""
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        typer.secho(f"error: {option} must be {bounds}, got {value}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)


def _without_option(argv: list[str], option: str) -> list[str]:
    """argv minus ``option VALUE`` / ``option=VALUE``."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


@app.command()
def data(
    source: Annotated[Path | None, typer.Option(help="package folder to read (default: the installed transformers)")] = None,
    feedback: Annotated[str | None, typer.Option(
        envvar="MLOPS_FEEDBACK",  # how the release workflow passes the database URL: its password stays out of argv
        help="stored user feedback to train on: the API's feedback database URL, or a file of GET /v1/feedback/export")] = None,
    docs: Annotated[Path | None, typer.Option(
        help="docs/source/en of a transformers checkout at the installed tag, for documentation links "
             "(default: <cache>/transformers-docs/<tag> when there, from make docs-source)")] = None,
) -> None:
    """Build the symbol corpus and question/passage splits; print the dataset hash."""
    from mlops.pipeline import build_data

    dataset_hash = _run(build_data, Settings.from_env(), source, echo, feedback, docs)
    result(dataset_hash)


def _read_line(prompt: str) -> str | None:
    """One line the annotator types (the prompt on stderr, as all progress); None once stdin ends."""
    typer.echo(prompt, err=True, nl=False)
    line = sys.stdin.readline()
    return line.rstrip("\n") if line else None


@app.command()
def review(
    feedback: Annotated[str, typer.Option(help="the feedback database (the API's DATABASE_URL), where decisions are stored too")],
    reviewer: Annotated[str, typer.Option(help="who reviews, stored with each decision (default: $USER)")] = "",
    dataset_hash: Annotated[str | None, typer.Option("--dataset", help="dataset whose corpus to search (default: the latest)")] = None,
    limit: Annotated[int | None, typer.Option(help="review at most this many questions")] = None,
) -> None:
    """Work through the questions users rated down: pick the symbol that answers each, mark it off-topic, or skip.
    The next `mlops data --feedback` trains on the decisions; prints what was decided as JSON."""
    from mlops.review import run_review

    if limit is not None:
        _check_range("--limit", limit, 1)
    name = reviewer or os.environ.get("USER", "")
    result(json.dumps(_run(run_review, Settings.from_env(), feedback, name, _read_line, dataset_hash, limit, echo)))


@app.command()
def labelled(
    source: Annotated[Path | None, typer.Option(help="package folder to read (default: the installed transformers)")] = None,
    folder: Annotated[Path | None, typer.Option(help="the labelled set's folder (default: model/mlops/data/labelled)")] = None,
) -> None:
    """Check the labelled questions (symbols exist, no names, no docstring copies, no evaluation questions);
    print their coverage as JSON."""
    from mlops.data.labelled import LABELLED_DIR
    from mlops.pipeline import check_labelled

    result(json.dumps(_run(check_labelled, Settings.from_env(), source, folder or LABELLED_DIR, echo)))


@app.command()
def train(
    dataset: Annotated[str | None, typer.Option(help="dataset hash (default: the latest `mlops data`)")] = None,
    epochs: Annotated[int | None, typer.Option(help=_default(TrainConfig, "epochs"))] = None,
    batch_size: Annotated[int | None, typer.Option(help=f"global batch, split across processes ({_default(TrainConfig, 'batch_size')})")] = None,
    learning_rate: Annotated[float | None, typer.Option(help=_default(TrainConfig, "learning_rate"))] = None,
    max_steps: Annotated[int | None, typer.Option(help="stop after this many steps")] = None,
    seed: Annotated[int | None, typer.Option(help=_default(TrainConfig, "seed"))] = None,
    shuffle_labels: Annotated[bool | None, typer.Option(help="train on shuffled pairs: a deliberately bad model (gate demo)")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="log a checkpoint to the run every N steps (default: none)")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32, bf16, fp16 (GPU only) or auto: bf16 on a GPU that has it, else "
                                                  f"fp16, fp32 on CPU ({_default(TrainConfig, 'precision')})")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="embed each process's batch in N chunks, the loss still over the whole "
                                                   f"batch (gradient caching; {_default(TrainConfig, 'grad_accum')})")] = None,
    strategy: Annotated[str | None, typer.Option(help="with --nproc-per-node > 1: ddp (a whole copy per process) or fsdp "
                                                 "(each process a shard of weights, gradients and optimiser state; "
                                                 f"{_default(TrainConfig, 'strategy')})")] = None,
    resume: Annotated[bool, typer.Option(help="continue the newest run of this configuration, dataset, commit, process count "
                                              "and key from its last checkpoint (none: start afresh)")] = False,
    resume_key: Annotated[str | None, typer.Option(envvar="MLOPS_RESUME_KEY", help="tag the run with this key; --resume takes "
                                                   "over only a run of the same key (Argo passes the workflow's uid)")] = None,
    nproc_per_node: Annotated[int, typer.Option(help="processes; >1 re-launches under torchrun (see --strategy)")] = 1,
    parent_run: Annotated[str | None, typer.Option(help="nest the run under this MLflow run (a study's or a search's)")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="a YAML of training options (`mlops tune` writes one); "
                                                     "options given here win over it")] = None,
) -> None:
    """Fine-tune the encoder; log params, per-step loss and the model to MLflow; print the run id."""
    from mlops.training.train import train as train_model

    if nproc_per_node > 1 and "LOCAL_RANK" not in os.environ:  # not yet under torchrun: relaunch there
        argv = _without_option(sys.argv[1:], "--nproc-per-node")
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}", "-m", "mlops", *argv]
        with tempfile.TemporaryDirectory(prefix="mlops-train-") as scratch:
            reported, failed = Path(scratch) / "run-id", Path(scratch) / "exit-code"  # rank 0's result; a worker's error
            code = subprocess.call(command, env={**os.environ, RESULT_FILE: str(reported), EXIT_FILE: str(failed)})
            if code == 0 and reported.is_file():
                result(reported.read_text(encoding="utf-8").strip())
            elif code and failed.is_file():
                code = int(failed.read_text() or 1)
            elif code:
                typer.secho("error: a training process was killed or crashed (out of memory, its node lost: see above); with "
                            "checkpoints, the same command with --resume goes on from the last one", fg=typer.colors.RED, err=True)
                code = PROCESSES_LOST
        raise typer.Exit(code)
    given = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "max_steps": max_steps, "seed": seed,
             "shuffle_labels": shuffle_labels, "checkpoint_every": checkpoint_every, "precision": precision,
             "grad_accum": grad_accum, "strategy": strategy}
    config = _options(TrainConfig, **{**_config_file(config_file), **{k: v for k, v in given.items() if v is not None}})
    run_id = _run(train_model, Settings.from_env(), config, dataset, echo, resume, resume_key, parent_run)
    if run_id:  # rank 0 only
        result(run_id)


@app.command("train-study")
def train_study(
    dataset: Annotated[str | None, typer.Option(help="dataset hash (default: the latest `mlops data`)")] = None,
    processes: Annotated[str, typer.Option(help="process counts to compare, comma-separated")] = "1,2",
    strategies: Annotated[str, typer.Option(help="strategies of the cases with several processes: ddp, fsdp")] = "ddp,fsdp",
    batch_sizes: Annotated[str, typer.Option(help="global batch sizes, comma-separated")] = "16,32",
    steps: Annotated[int, typer.Option(help="training steps of every case")] = 30,
) -> None:
    """Time training: one process against several, DDP against FSDP, by batch size; each case a real `mlops train`
    nested under the study's MLflow run. Writes train-study.json and .png to the reports folder (shown by
    `mlops results-page`); prints the report's path."""
    from mlops.training.study import StudyConfig, study

    config = _options(StudyConfig, processes=_numbers("--processes", processes), strategies=_names(strategies),
                      batch_sizes=_numbers("--batch-sizes", batch_sizes), steps=steps)
    result(str(_run(study, Settings.from_env(), config, dataset, echo)))


def _config_file(path: Path | None) -> dict:
    """The options a --config YAML file sets (none without one); a missing or malformed file is a usage error."""
    if path is None:
        return {}
    import yaml

    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        typer.secho(f"error: --config {path}: {str(exc).splitlines()[0]}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    if not isinstance(values, dict) or not all(k in TrainConfig.model_fields for k in values):
        unknown = sorted(set(values) - set(TrainConfig.model_fields)) if isinstance(values, dict) else ["(not a mapping)"]
        typer.secho(f"error: --config {path}: not training options ({', '.join(map(str, unknown))}); expected keys of "
                    f"{', '.join(TrainConfig.model_fields)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    return values


def _numbers(option: str, text: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers; anything else is a usage error (exit 2)."""
    try:
        return tuple(int(part) for part in _names(text))
    except ValueError:
        typer.secho(f"error: {option}: {text!r} is not a comma-separated list of whole numbers", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@app.command()
def tune(
    dataset: Annotated[str | None, typer.Option(help="dataset hash (default: the latest `mlops data`)")] = None,
    trials: Annotated[int | None, typer.Option(help=f"configurations sampled ({_default(TuneConfig, 'trials')})")] = None,
    max_steps: Annotated[int | None, typer.Option(help=f"steps of a trial never stopped ({_default(TuneConfig, 'max_steps')})")] = None,
    evaluate_every: Annotated[int | None, typer.Option(help="steps between a trial's validation scores, ASHA's rungs "
                                                       f"({_default(TuneConfig, 'evaluate_every')})")] = None,
    batch_sizes: Annotated[str | None, typer.Option(help="batch sizes to choose from, comma-separated (16,32,64)")] = None,
    seed: Annotated[int | None, typer.Option(help=_default(TuneConfig, "seed"))] = None,
    out: Annotated[Path, typer.Option(help="where the best configuration goes (YAML for `mlops train --config`)")] = Path("tuned-train.yaml"),
) -> None:
    """Search learning rate, batch size, epochs and the loss temperature on Ray Tune (ASHA on validation MRR, the fusion
    weight swept in each trial); each trial an MLflow child run; writes the best configuration; prints its path."""
    from mlops.evaluation.tune import tune_search

    config = _options(TuneConfig, trials=trials, max_steps=max_steps, evaluate_every=evaluate_every, seed=seed,
                      batch_sizes=_numbers("--batch-sizes", batch_sizes) if batch_sizes else None)
    result(str(_run(tune_search, Settings.from_env(), config, out, dataset, echo)))


@app.command()
def evaluate(
    run_id: Annotated[str | None, typer.Option("--run", help="training run (default: the latest)")] = None,
    metric: Annotated[str | None, typer.Option(help="gate metric on the test split: mrr, recall_at_1, recall_at_5, recall_at_10"
                                               f" ({_default(GateConfig, 'metric')})")] = None,
    tolerance: Annotated[float | None, typer.Option(
        help=f"how much worse than the champion the candidate may be ({_default(GateConfig, 'tolerance')})")] = None,
) -> None:
    """Score the candidate, baselines and champion; write report.json and plots; apply the quality gate."""
    from mlops.evaluation.evaluate import evaluate as run_evaluation

    config = _options(GateConfig, metric=metric, tolerance=tolerance)
    _run(run_evaluation, Settings.from_env(), run_id, config, echo)


@app.command()
def register(run_id: Annotated[str | None, typer.Option("--run", help="training run (default: the latest)")] = None) -> None:
    """Register a run that passed the gate as a model version and mark it `candidate`; print the version."""
    from mlops.pipeline import register_run

    result(_run(register_run, Settings.from_env(), run_id, echo))


@app.command()
def deploy(
    version: Annotated[str | None, typer.Option(help="model version (default: the `candidate`)")] = None,
    champion: Annotated[bool, typer.Option(help="then serve it here and move `champion` (--no-champion: only test it; "
                                                "the cluster moves `champion` after the staging smoke test)")] = True,
) -> None:
    """Export to Triton, load it in the real server, smoke + contract test, then move `champion`."""
    from mlops.lifecycle.deploy import deploy as deploy_version

    _run(deploy_version, Settings.from_env(), version, echo, move_champion=champion)


@app.command("champion")
def champion_command(version: Annotated[str, typer.Option(help="the model version staging serves and smoke-tested")]) -> None:
    """Move `champion` to VERSION (the release workflow's last step, after the staging smoke test)."""
    from mlops.lifecycle.deploy import crown

    _run(crown, Settings.from_env(), version, echo)


@app.command()
def pipeline(
    source: Annotated[Path | None, typer.Option(help="package folder to read (default: the installed transformers)")] = None,
    max_steps: Annotated[int | None, typer.Option(help="cap training steps (quick runs)")] = None,
    docs: Annotated[Path | None, typer.Option(help="docs/source/en of transformers at the installed tag, as for mlops data")] = None,
) -> None:
    """The main job: data -> train -> evaluate -> register -> deploy, with the wall time of each stage."""
    from mlops.pipeline import run_pipeline

    _run(run_pipeline, Settings.from_env(), source, max_steps, echo, docs)


@app.command()
def publish(
    version: Annotated[str | None, typer.Option(help="model version (default: the `candidate`)")] = None,
    store: Annotated[str | None, typer.Option(help="s3://BUCKET the cluster's Triton loads from (default: $MLOPS_MODEL_STORE, s3://models)")] = None,
) -> None:
    """Export a registered version and upload it to the artifact store (S3/MinIO) for the cluster's Triton."""
    from mlops.lifecycle.publish import publish as run_publish

    settings = Settings.from_env()
    result(_run(run_publish, settings, version, store or settings.model_store, echo))


@app.command()
def smoke(
    url: Annotated[str, typer.Option(help="the deployed API, e.g. http://transformers-qa-api.transformers-qa:8080")],
    version: Annotated[str, typer.Option(help="the model version it must serve")],
    timeout: Annotated[float, typer.Option(help="seconds to wait for that version to be served")] = 900,
) -> None:
    """Wait until a deployed API serves VERSION (ArgoCD rolled it out), then check its answers."""
    from mlops.release.smoke import smoke as run_smoke

    _check_range("--timeout", timeout, 0)
    _run(run_smoke, url, version, timeout, echo)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question, in plain words")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help=f"how many answers (1-{MAX_TOP_K})")] = DEFAULT_TOP_K,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array instead of text ([] when it abstains)")] = False,
) -> None:
    """Answer a question with the current champion model: each answer's name and signature, the sentence that answers,
    the links; the best one's example and documentation."""
    from mlops.ask import ask as answer

    reply, version = _run(answer, Settings.from_env(), question, top_k)
    if as_json:
        result(json.dumps(reply["answers"], indent=2))
        return
    from rich.console import Console

    from mlops.ask import show

    show(reply, version, Console(soft_wrap=False))


@app.command()
def highlights(
    questions: Annotated[str, typer.Option(help="dev: the development questions; test: the held-out natural questions, "
                                                 "reported once")] = "dev",
    out: Annotated[Path | None, typer.Option(help="the report (default: <reports>/highlights-<questions>.json)")] = None,
) -> None:
    """The champion's highlights on a sample of natural questions, against the hand labels
    (mlops/data/eval_sets/highlight_labels.yaml); the report lists what is still unlabelled."""
    from mlops.ask import champion_retriever
    from mlops.evaluation.highlights import check_highlights, question_set

    questions_file = _run(question_set, questions)
    settings = Settings.from_env()
    retriever, _ = _run(champion_retriever, settings)
    _run(check_highlights, retriever, out or settings.reports_dir / f"highlights-{questions}.json", questions_file, echo=echo)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address the API listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port (1-65535)")] = 8080,
    triton_url: Annotated[str | None, typer.Option(help="host:port of a running Triton (default: start one with the champion)")] = None,
) -> None:
    """Serve the champion: Triton plus the HTTP API and web page; Ctrl-C stops both."""
    from mlops.serving.serve import serve as run_server

    _check_range("--port", port, 1, 65535)
    _run(run_server, Settings.from_env(), host, port, triton_url, echo)



@app.command()
def bench(
    requests: Annotated[int | None, typer.Option(help=f"requests per system and concurrency level ({_default(BenchConfig, 'requests')})")] = None,
    api_seconds: Annotated[int | None, typer.Option(
        help=f"length of the Locust run against the API ({_default(BenchConfig, 'api_seconds')})")] = None,
) -> None:
    """Serving benchmark: Triton vs a naive server vs the in-process bound, the API under Locust, and each encoder
    variant (torch-fp32, onnx-fp32, onnx-int8) through Triton and in process."""
    from mlops.bench.run import run_bench

    _run(run_bench, Settings.from_env(), _options(BenchConfig, requests=requests, api_seconds=api_seconds), echo)


@app.command("bench-providers")
def bench_providers() -> None:
    """The champion's ONNX encoder under each ONNX Runtime execution provider (CPU; CUDA and TensorRT where the
    installed onnxruntime has them) at batch sizes 1-64; writes providers.json to the reports folder."""
    from mlops.bench.providers import bench_providers as run_providers

    _run(run_providers, Settings.from_env(), echo)


@app.command()
def simulate(
    url: Annotated[str, typer.Option(help="the environment's API, e.g. http://qa.203.0.113.10.nip.io")],
    count: Annotated[int, typer.Option(help="how many questions to send (1-10000)")] = 40,
    seed: Annotated[int, typer.Option(help="the same seed sends the same questions in the same order")] = 0,
    rate: Annotated[float, typer.Option(help="at most this many questions a second")] = 2.0,
    feedback: Annotated[bool, typer.Option(help="rate each answer as the persona would (--no-feedback: ask only)")] = True,
) -> None:
    """Seeded traffic of simulated users (novice, experienced, researcher, off-topic) with their thumbs up/down, for
    staging load tests and a canary's analysis; prints each question and answer, then a JSON summary per persona."""
    from mlops.bench.simulate import simulate as run_simulate

    _check_range("--count", count, 1, 10000)
    _check_range("--rate", rate, 0.01)
    result(json.dumps(_run(run_simulate, url, count, seed, rate, feedback, echo), indent=2))


@app.command("results-page")
def results_page(
    out: Annotated[Path, typer.Option(help="the page to write")] = Path("docs/results.md"),
    report: Annotated[Path | None, typer.Option(help="an evaluation report.json (default: the newest under the reports folder)")] = None,
    bench: Annotated[Path | None, typer.Option(help="a benchmark bench.json (default: the reports folder's)")] = None,
    train_study: Annotated[Path | None, typer.Option(help="a train-study.json (default: the reports folder's)")] = None,
) -> None:
    """Render the measured figures (report.json of evaluate, bench.json of bench, train-study.json of train-study) as a
    markdown page; print its path."""
    from mlops.results_page import write_results_page

    result(str(_run(write_results_page, Settings.from_env(), out, report, bench, echo, train_study)))


Environment = Annotated[str, typer.Option("--env", help="dev, staging or prod")]


@app.command()
def promote(
    env: Environment,
    version: Annotated[str | None, typer.Option(help="registered model version to promote")] = None,
    from_env: Annotated[str | None, typer.Option("--from", help="promote the version and images this environment runs")] = None,
    image_tag: Annotated[str | None, typer.Option(help="also set the environment's image tags (a release tag)")] = None,
    alias: Annotated[bool, typer.Option(help="move the MLflow alias now (--no-alias: when a pull request merges)")] = True,
    skip_ci: Annotated[bool, typer.Option(help="mark the commit [skip ci] (commits made by the Argo workflow)")] = False,
    note: Annotated[str | None, typer.Option(help="an extra line for the commit message, e.g. the workflow run")] = None,
) -> None:
    """Set an environment's model version (and image tags) with one git commit, pushed if there is a remote;
    print the commit. ArgoCD deploys it."""
    from mlops.release.promote import promote as run_promote

    result(_run(run_promote, Settings.from_env(), env, version, from_env, repo_path=Path.cwd(), image_tag=image_tag,
                    move_alias=alias, skip_ci=skip_ci, note=note, echo=echo))


@app.command("sync-alias")
def sync_alias(env: Environment) -> None:
    """Point the MLflow alias ENV at the model version git says ENV runs (after a promotion PR merges)."""
    from mlops.release.promote import sync_alias as run_sync

    _run(run_sync, Settings.from_env(), env, repo_path=Path.cwd(), echo=echo)


@app.command()
def rollback(env: Environment) -> None:
    """`git revert` the environment's newest promotion (never a reset); ArgoCD deploys the previous version."""
    from mlops.release.promote import rollback as run_rollback

    _run(run_rollback, Settings.from_env(), env, repo_path=Path.cwd(), echo=echo)


gitops_app = typer.Typer(help="What ArgoCD deploys from this repository.", no_args_is_help=True)
app.add_typer(gitops_app, name="gitops")


@gitops_app.command("wait")
def gitops_wait(
    app_name: Annotated[str, typer.Option("--app", help="the ArgoCD Application, e.g. transformers-qa-staging")],
    commit: Annotated[str, typer.Option(help="the commit it must run (what `mlops promote` printed)")],
    namespace: Annotated[str, typer.Option(help="namespace of the Application")] = "argocd",
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 900,
    service_account: Annotated[Path, typer.Option(help="the pod's service-account folder (token, ca.crt)")] = Path(
        "/var/run/secrets/kubernetes.io/serviceaccount"),
) -> None:
    """In a pod: wait until the Application is Synced at a revision containing COMMIT and Healthy; print that revision."""
    from mlops.release.wait import KubernetesApi, wait

    _check_range("--timeout", timeout, 0)
    result(_run(lambda: wait(app_name, namespace, commit, timeout, repo_path=Path.cwd(),
                             api=KubernetesApi.in_cluster(service_account), echo=echo)))


Domain = Annotated[str, typer.Option(help="the cluster's domain the root Application passes (its floating IP's name)")]
Env = Annotated[str, typer.Argument(help="dev, staging or prod")]


@gitops_app.command("render")
def gitops_render(env: Env, domain: Domain = "203.0.113.10.nip.io") -> None:
    """Print every manifest ArgoCD would apply for ENV: the root Application, then what each Application
    renders to (upstream charts from the chart cache, at their pinned versions)."""
    from mlops.gitops.render import render
    from mlops.release.git import GitRepo

    result(_run(lambda: render(GitRepo(Path.cwd()).root, env, domain)), end="")


@gitops_app.command("fill-cache")
def gitops_fill_cache(target: Annotated[Path, typer.Option(help="where to unpack what the cache lacks")] = Path(".mlops/charts")) -> None:
    """Fetch every pinned upstream chart and CRD file the chart cache lacks (needs the network)."""
    from mlops.gitops.charts import fill_cache
    from mlops.gitops.render import role_defaults
    from mlops.release.git import GitRepo

    def fill() -> int:
        root = GitRepo(Path.cwd()).root
        return fill_cache(root, role_defaults(root)["argocd_version"], target.resolve(), echo)

    fetched = _run(fill)
    echo(f"{fetched} fetched into {target}" if fetched else "the chart cache already holds every pinned chart and CRD")


@gitops_app.command("validate")
def gitops_validate(envs: Annotated[list[str] | None, typer.Argument(help="environments (default: all)")] = None) -> None:
    """Render each environment and check every object: built-in kinds against Kubernetes' schemas, custom
    resources against their CRDs, strictly (unknown fields rejected)."""
    from mlops.gitops.render import render_environment
    from mlops.gitops.validate import validate_environment
    from mlops.release.git import GitRepo
    from mlops.release.layout import ENVIRONMENTS

    def check() -> int:
        root, found = GitRepo(Path.cwd()).root, 0
        for env in envs or ENVIRONMENTS:
            rendered = render_environment(root, env)
            for app, problems in validate_environment(root, rendered).items():
                for problem in problems:
                    result(f"{env}: {app}: {problem}")
                found += len(problems)
            echo(f"{env}: {len(rendered)} Applications, {sum(len(r.documents) for r in rendered)} objects checked")
        return found

    found = _run(check)
    if found:
        typer.secho(f"error: {found} invalid field(s); see above", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


@gitops_app.command("images")
def gitops_images(envs: Annotated[list[str] | None, typer.Argument(help="environments (default: all)")] = None) -> None:
    """Print every container image the environments run and the images are built from, one per line."""
    from mlops.gitops.images import all_images
    from mlops.gitops.render import render_environment
    from mlops.release.git import GitRepo
    from mlops.release.layout import ENVIRONMENTS

    def collect() -> set[str]:
        root = GitRepo(Path.cwd()).root
        return all_images(root, [d for env in envs or ENVIRONMENTS for result in render_environment(root, env) for d in result.documents])

    for image in sorted(_run(collect)):
        result(image)


def main() -> None:
    """The `mlops` entry point (also `python -m mlops`, what torchrun starts)."""
    if len(sys.argv) == 1 or "--help" in sys.argv[1:]:
        app()  # the help text is what was asked for: on stdout, as usual
    with stdout_holds_only_results():
        app()


if __name__ == "__main__":
    main()
