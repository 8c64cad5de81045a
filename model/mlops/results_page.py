"""`mlops results-page`: docs/results.md, rendered from the latest measurements on this machine.

The figures come only from what the pipeline and the benchmarks write: ``<reports>/<run>/report.json``
(`mlops evaluate`, mlops.evaluation.evaluate), ``<reports>/bench.json`` (`mlops bench`, mlops.bench.run) and
``<reports>/train-study.json`` with its plot (`mlops train-study`, mlops.training.study; the plot is copied next
to the page). Nothing on the page is typed by hand; a missing file is said so on the page.
Only the standard library and torch-free mlops modules are used, so rendering needs neither torch nor MLflow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.data.eval_sets import FRESH_SET
from mlops.training.config import STUDY_PLOT, STUDY_REPORT

# The question sets `mlops evaluate` scores every system on, in the order the page shows them.
SET_NAMES = {
    "natural": "natural questions",
    "natural_dev": "development questions",
    "test": "templated test split",
    "test_trained_rules": "test questions of the trained rules (the gate's encoder check)",
    "test_labelled": "labelled questions about held-out symbols",
    "natural_fresh": "fresh natural questions (random symbols, written before any run; sliced by labelled or not)",
    "feedback_trained": "questions users taught it (thumbs-up and reviewed thumbs-down; trained on, so never gated)",
}
SYSTEM_NAMES = {
    "candidate": "candidate (deployed system)",
    "candidate_dense": "tuned encoder alone",
    "untuned": "untuned encoder",
    "bm25": "BM25",
    "champion": "champion",
}
METRICS = ("recall_at_1", "recall_at_5", "recall_at_10", "mrr")
WEAKEST_SLICES = 5


def latest_report(reports_dir: Path) -> Path | None:
    """The newest ``<run>/report.json`` under the reports folder (by modification time), if any."""
    found = sorted(reports_dir.glob("*/report.json"), key=lambda p: p.stat().st_mtime) if reports_dir.is_dir() else []
    return found[-1] if found else None


def load(path: Path | None) -> dict | None:
    """A JSON report, or None when there is none; a file that is not JSON is a one-line error."""
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MlopsError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); run the command that writes it again") from None


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows)]


def _f(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _quality(report: dict, source: str) -> list[str]:
    systems = report["systems"]
    candidate = systems["candidate"]
    sets = [s for s in SET_NAMES if s in candidate] + [s for s in candidate if s not in SET_NAMES]
    gate = report["gate"]
    lines = [
        f"From `{source}`: run `{report['run_id']}`, dataset `{report['dataset_hash']}`, "
        f"compared with champion version {report['champion_version'] or '(none registered)'}.",
        "",
        f"- Quality gate: **{'passed' if gate['passed'] else 'failed'}** ({gate['reason']}; "
        f"metric `{gate['metric']}`, tolerance {gate['tolerance']}).",
    ]
    lines += [f"  - {c['check']}: {_f(c['values'][0], 4)} vs {_f(c['values'][1], 4)}, {'passed' if c['passed'] else 'failed'}"
              for c in gate["checks"]]
    sweep = ", ".join(f"{w}: {_f(v)}" for w, v in report["bm25_weight_sweep_validation"].items())
    lines += [
        f"- BM25 fusion weight: {report['bm25_weight']} (chosen on the validation split by `{gate['metric']}`: {sweep}).",
        f"- In-process search (encode, fuse, rank; batched): {report['search_questions_per_second']:.0f} questions/s "
        "on the templated test questions.",
    ]
    lines += ["", f"### Encoder variants (questions encoded by each; the served one is **{report['served_variant']}**)", ""]
    variant_sets = list(next(iter(report["variants"].values()))["sets"])
    rows = [[variant, *(f"{_f(f['sets'][w]['recall@5'])} ({f['sets'][w]['delta_recall@5']:+.3f}) / {_f(f['sets'][w]['mrr'])}"
                        f" ({f['sets'][w]['delta_mrr']:+.3f})" for w in variant_sets),
             f"{f['questions_per_second']:.0f}", f"{f['bytes'] / 2**20:.1f} MiB" if "bytes" in f else "(torch weights)",
             "yes" if f["deployable"] else f"no: {f['fault']}"] for variant, f in report["variants"].items()]
    lines += _table(["variant", *(f"{w} recall@5 / MRR (delta)" for w in variant_sets), "questions/s in process", "graph", "deployable"],
                    rows)
    lines += _abstention(report.get("abstention"))
    for which in sets:
        count = candidate[which]["overall"]["count"]
        lines += ["", f"### {SET_NAMES.get(which, which)} (`{which}`, {count} questions)", ""]
        rows = [[SYSTEM_NAMES.get(name, name), *(_f(system[which]["overall"][m]) for m in METRICS)]
                for name, system in systems.items() if which in system]
        lines += _table(["system", "recall@1", "recall@5", "recall@10", "MRR"], rows)
        if which == FRESH_SET:
            lines += ["", "The deployed system on the fresh questions, by whether their symbol has labelled questions in the train"
                      " split (trained on or indexed):", ""]
            lines += _table(["symbol", "questions", "recall@1", "recall@5", "recall@10", "MRR"],
                            [[name, str(s["count"]), *(_f(s[m]) for m in METRICS)] for name, s in sorted(candidate[which]["slices"].items())])
    for which in ("natural", "natural_dev"):
        slices = candidate.get(which, {}).get("slices", {})
        if slices:
            weakest = sorted(slices.items(), key=lambda item: (item[1]["recall_at_5"], item[0]))[:WEAKEST_SLICES]
            listed = ", ".join(f"{name} {_f(s['recall_at_5'], 2)} ({s['count']})" for name, s in weakest)
            lines += ["", f"Weakest topics of the candidate on the {SET_NAMES[which]} (recall@5, questions): {listed}."]
    return lines


def _abstention(abstention: dict | None) -> list[str]:
    if abstention is None:  # a report from before abstention
        return []
    targets = abstention["targets"]
    lines = ["", f"### Abstention (no answer below a best cosine of {_f(abstention['threshold'])})", "",
             f"Chosen on {' and '.join(f'`{w}`' for w in abstention['chosen_on'])}: the highest threshold that refuses at most "
             f"{abstention['max_dev_refused']:.0%} of each. Targets: in-domain natural questions refused at most "
             f"{targets['in_domain_refused']:.0%}, off-topic questions answered at most {targets['off_topic_answered']:.0%}.", ""]
    lines += _table(["in-domain set", "refused"], [[f"`{w}`", f"{v:.1%}"] for w, v in abstention["in_domain_refused"].items()])
    kinds = sorted({k for f in abstention["off_topic_answered"].values() for k in f["by_kind"]})
    lines += [""] + _table(["off-topic set", "questions", "answered", *kinds],
                           [[f"`{w}`", str(f["count"]), f"{f['answered']:.1%}", *(f"{f['by_kind'].get(k, 0):.0%}" for k in kinds)]
                            for w, f in abstention["off_topic_answered"].items()])
    return lines


def _serving(bench: dict, source: str) -> list[str]:
    lines = [
        f"From `{source}`: model version {bench['model_version']}, {bench['questions']} natural questions, "
        f"{bench['requests_per_level']} requests per system and level, {bench['cpu_count']} CPU cores "
        "(load generators included).",
        "",
    ]
    rows = []
    for level in sorted(bench["concurrency"], key=int):
        at = bench["concurrency"][level]
        triton, naive = at["triton"], at["naive"]
        rows.append([level, _f(triton["qps"], 1), _f(triton["p50_ms"], 1), _f(triton["p95_ms"], 1), _f(triton["p99_ms"], 1),
                     str(triton["failures"]), _f(naive["qps"], 1), _f(naive["p95_ms"], 1), str(naive["failures"]),
                     f"{at['triton_vs_naive']:.2f}x", _f(at["triton_vs_bound"], 2)])
    lines += _table(["clients", "Triton q/s", "p50 ms", "p95 ms", "p99 ms", "failures", "naive q/s", "naive p95 ms",
                     "naive failures", "Triton / naive", "Triton / bound"], rows)
    lines += ["", f"- In-process bound (batched, no server): {_f(bench['bound']['qps'], 1)} questions/s."]
    api = bench.get("api")
    if api:
        lines.append(f"- The API under Locust ({api['users']} users, {api['seconds']} s): {_f(api['qps'], 1)} q/s, "
                     f"p50 {_f(api['p50_ms'], 0)} ms, p95 {_f(api['p95_ms'], 0)} ms, p99 {_f(api['p99_ms'], 0)} ms, "
                     f"{api['failures']} failures in {api['requests']} requests.")
    variants = bench.get("variants")
    if variants:
        levels = sorted((k for k in next(iter(variants.values())) if k.isdigit()), key=int)
        lines += ["", "Each encoder variant of the same version through Triton (q/s, p95 ms, and q/s against torch-fp32) and in"
                  " process:", ""]
        rows = [[variant, *(f"{_f(v[c]['qps'], 1)} / {_f(v[c]['p95_ms'], 0)} / {v[c]['vs_torch']:.2f}x" for c in levels),
                 _f(v["bound_qps"], 1)] for variant, v in variants.items()]
        lines += [*_table(["encoder", *(f"{c} clients" for c in levels), "in-process bound q/s"], rows), ""]
    profile = bench.get("triton_profile")
    if profile and "share" in profile:
        shares = ", ".join(f"{stage} {share:.0%}" for stage, share in profile["share"].items())
        lines.append(f"- Where the Triton model spends its time (py-spy, {profile['samples']} samples): {shares}.")
    elif profile:
        lines.append(f"- No profile of the Triton model: {profile.get('error', 'none recorded')}.")
    return lines


def _training_time(study: dict, source: str, plot: str | None) -> list[str]:
    where = study["machine"]
    config = study["config"]
    lines = [f"From `{source}` ({study['date']}): {config['steps']} steps per case on dataset `{study['dataset_hash']}`, "
             f"{where['cores']} cores ({where['cpu']}), {', '.join(where['gpus']) or 'no GPU'}, torch {where['torch']}; "
             f"MLflow run `{study['study_run_id']}` holds each case as a child run.", ""]
    rows = [[str(c["processes"]), c["strategy"], str(c["batch_size"]), _f(c["steps_per_second"], 2), _f(c["pairs_per_second"], 1),
             f"{c['speedup_vs_one_process']:.2f}x" if c["speedup_vs_one_process"] else "-",
             f"{_f(c['seconds_to_target'], 1)} (to {_f(c['target_loss'])})", f"{c['peak_memory_mb']:.0f}"]
            for c in study["cases"]]
    lines += _table(["processes", "strategy", "batch", "steps/s", "pairs/s", "vs one process", "seconds to the loss",
                     "rank 0 peak MiB"], rows)
    lines += ["", "Steps/s are after the first step. The target loss is the highest any case of that batch size ends at, "
              f"on a {study['smoothing']}-step moving average; the seconds are from when that average stays at or below "
              "it. Losses of different batch sizes do not compare."]
    if plot:
        lines += ["", f"![Loss against time and throughput of each case]({plot})"]
    return lines


def render(report: dict | None, bench: dict | None, report_source: str, bench_source: str, study: dict | None = None,
           study_source: str = "train-study.json", plot: str | None = None) -> str:
    """The markdown page for an evaluation report, a benchmark report and a training-time study (any may be None)."""
    lines = [
        "# Results",
        "",
        "Generated by `mlops results-page` (`make results`) from the latest `report.json` of `mlops evaluate`,",
        "`bench.json` of `mlops bench` and `train-study.json` of `mlops train-study` on the machine that ran them. Do",
        "not edit it by hand: run `make pipeline`, `make bench` and `make train-study`, then `make results`. The",
        "experiments behind these figures: [experiments.md](experiments.md).",
        "",
        "## Retrieval quality",
        "",
    ]
    try:
        lines += _quality(report, report_source) if report else [
            f"No evaluation report (`{report_source}`): run `make pipeline` (or `mlops evaluate`), then `make results`."]
    except (KeyError, TypeError, IndexError) as exc:
        raise MlopsError(f"{report_source} is not a report `mlops evaluate` writes (no {exc}); evaluate again") from None
    lines += ["", "## Serving", ""]
    try:
        lines += _serving(bench, bench_source) if bench else [
            f"No benchmark report (`{bench_source}`): run `make bench` (needs a champion), then `make results`."]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise MlopsError(f"{bench_source} is not a report `mlops bench` writes (no {exc}); run the benchmark again") from None
    lines += ["", "## Training time", ""]
    try:
        lines += _training_time(study, study_source, plot) if study else [
            f"No training-time study (`{study_source}`): run `make train-study`, then `make results`."]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise MlopsError(f"{study_source} is not a report `mlops train-study` writes (no {exc}); run the study again") from None
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    """A path as the page shows it: relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def write_results_page(settings: Settings, out: Path, report: Path | None = None, bench: Path | None = None, echo=print,
                       study: Path | None = None) -> Path:
    """Render the page from ``report`` (default: the newest report.json), ``bench`` (default: bench.json) and ``study``
    (default: train-study.json, whose plot beside it is copied next to the page)."""
    for given, option in ((report, "--report"), (bench, "--bench"), (study, "--train-study")):
        if given is not None and not given.is_file():
            raise MlopsError(f"{option} {given}: no such file")
    report = report or latest_report(settings.reports_dir) or settings.reports_dir / "<run>" / "report.json"
    bench = bench or settings.reports_dir / "bench.json"
    study = study or settings.reports_dir / STUDY_REPORT
    studied, plot = load(study), study.with_name(STUDY_PLOT)
    out.parent.mkdir(parents=True, exist_ok=True)
    shown_plot = None
    if studied and plot.is_file():
        shutil.copyfile(plot, out.parent / STUDY_PLOT)
        shown_plot = STUDY_PLOT
    page = render(load(report), load(bench), _shown(report), _shown(bench), studied, _shown(study), shown_plot)
    out.write_text(page, encoding="utf-8")
    echo(f"wrote {out} from {_shown(report)}, {_shown(bench)} and {_shown(study)}")
    return out
