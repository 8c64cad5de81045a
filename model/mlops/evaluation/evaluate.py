"""Evaluate a trained model against baselines and the champion, and decide the quality gate.

Systems compared on the same corpus and questions:
  candidate        the fine-tuned encoder fused with BM25 (weight chosen on the validation split),
                   plus the public-API prior: the system that gets deployed
  candidate_dense  the fine-tuned encoder alone
  untuned          all-MiniLM-L6-v2 as shipped, alone
  bm25             BM25 alone (the baselines use no prior, and index no labelled questions)
  champion         the registered ``champion`` (its own encoder and weight), if there is one
Question sets: the dataset's held-out ``test`` split (templated, sliced by category), the
hand-written natural questions (sliced by topic; reported, never trained on), the hand-written
development questions (``natural_dev``: what retrieval changes are developed against), and the
test questions of the rules the run trained on (``test_trained_rules``: what the gate's encoder check reads), and,
when users' feedback or reviews made training pairs, those questions (``feedback_trained``: trained on, so reported
apart, never gated: whether retraining learnt what users taught it).
The candidate also gets its abstention threshold here (``measure_abstention``), from the in-domain development sets,
with its refusals of in-domain questions and its answers to the off-topic sets (and to the questions annotators
marked off-topic) reported.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib
import mlflow
import numpy as np
from pydantic import BaseModel

from mlops.core.errors import GateFailed, MlopsError
from mlops.core.settings import Settings
from mlops.data import dataset
from mlops.data.corpus import Symbol
from mlops.data.eval_sets import (
    FRESH_SET,
    NATURAL_DEV,
    NATURAL_FRESH,
    NATURAL_QUESTIONS,
    OFF_TOPIC_SETS,
    load_natural_questions,
    load_off_topic_questions,
)
from mlops.data.feedback import FEEDBACK_RULES
from mlops.data.labelled import RULES as LABELLED_RULES
from mlops.data.questions import TEMPLATED_RULES
from mlops.evaluation import abstention
from mlops.evaluation.gate import GATE_SET, VARIANT_MAX_LOSS, VARIANT_METRICS, GateConfig, choose_variant, decide_gate, variant_faults
from mlops.lifecycle import registry, tracking
from mlops.lifecycle.export import served_query_encoder
from mlops.lifecycle.onnx_export import export_onnx
from mlops.search.encoder import Encoder, base_model_path
from mlops.search.metrics import KS, score_by_slice
from mlops.search.onnx_encoder import VARIANT_FILES, OnnxEncoder
from mlops.search.retriever import Retriever, corpus_embeddings, without_labelled_questions
from mlops.search.settings import TORCH_FP32, RetrievalSettings, shipped_settings
from mlops.training.config import TrainConfig

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend first: no display here or in pods)

BM25_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
SETS = ("test", "natural", "natural_dev")  # the question sets every system is scored on (and printed)
LABELLED_TEST_SET = "test_labelled"
FEEDBACK_SET = "feedback_trained"
REVIEWED_OFF_TOPIC = "off_topic_reviewed"


class QuestionSet(BaseModel):
    questions: list[str]
    expected: list[set[str]]
    slices: list[str]


def split_questions(folder: Path, split: str, symbols: dict[str, Symbol], rules: set[str] | None = None,
                    strict: bool = False, slice_by_rule: bool = False) -> QuestionSet:
    """A split's questions; only those made by ``rules`` when that keeps any (all of them otherwise, unless ``strict``).
    Sliced by the symbol's category, or by the rule that made the question."""
    pairs = dataset.load_split(folder, split)
    if rules and (strict or any(p.rule in rules for p in pairs)):
        pairs = [p for p in pairs if p.rule in rules]
    return QuestionSet(questions=[p.question for p in pairs], expected=[{p.symbol} for p in pairs],
                       slices=[p.rule if slice_by_rule else symbols[p.symbol].category for p in pairs])


def _natural_set(symbols: dict[str, Symbol], path: Path) -> QuestionSet:
    items = load_natural_questions(path)
    missing = sorted({s for q in items for s in q.expected} - symbols.keys())
    if missing:
        raise MlopsError(f"natural questions expect symbols not in this corpus: {', '.join(missing[:3])}; fix {path}")
    return QuestionSet(questions=[q.question for q in items], expected=[set(q.expected) for q in items], slices=[q.topic for q in items])


def score(retriever: Retriever, questions: QuestionSet, scores: np.ndarray | None = None) -> dict:
    hits = retriever.rank(questions.questions, max(KS), scores)
    ranked = [[retriever.symbols[i].symbol for i, _ in row] for row in hits]
    return score_by_slice(ranked, questions.expected, questions.slices)


def search_throughput(retriever: Retriever, questions: list[str]) -> float:
    """Questions per second for the whole batched path: encode, fuse with BM25 and the prior, rank."""
    retriever.rank(questions[:32], max(KS))  # warm-up: first calls pay for lazy initialisation
    started = time.perf_counter()
    retriever.rank(questions, max(KS))
    return len(questions) / (time.perf_counter() - started)


def choose_bm25_weight(encoder: Encoder, symbols: list[Symbol], embeddings: np.ndarray, validation: QuestionSet, metric: str) -> tuple[float, dict]:
    """Model selection on the validation split: the fusion weight that maximises the gate metric."""
    retriever = Retriever.from_settings(shipped_settings(0.0), encoder, symbols, embeddings)
    dense, lexical = retriever.components(validation.questions)  # encode once, fuse per weight
    results = {w: score(retriever, validation, retriever.fuse(dense, lexical, w))["overall"][metric] for w in BM25_WEIGHTS}
    best = max(results, key=lambda w: (results[w], -w))
    return best, {str(w): v for w, v in results.items()}


def measure_variants(encoders: dict[str, Encoder | OnnxEncoder], settings: RetrievalSettings, symbols: list[Symbol],
                     embeddings: np.ndarray, sets: dict[str, QuestionSet], speed_questions: list[str]) -> dict[str, dict]:
    """Each encoder variant as it would serve (the same index, fusion and prior; its own question vectors): recall@5
    and MRR per set with their deltas against torch-fp32, and in-process questions per second."""
    measured = {}
    for variant, encoder in encoders.items():
        retriever = Retriever.from_settings(settings.model_copy(update={"encoder_variant": variant}), encoder, symbols, embeddings)
        figures = {which: score(retriever, questions)["overall"] for which, questions in sets.items()}
        measured[variant] = {"sets": {which: {"recall@5": f["recall_at_5"], "mrr": f["mrr"]} for which, f in figures.items()},
                             "questions_per_second": search_throughput(retriever, speed_questions)}
    reference = measured[TORCH_FP32]["sets"]
    for figures in measured.values():
        for which, values in figures["sets"].items():
            values.update({f"delta_{m}": values[m] - reference[which][m] for m in VARIANT_METRICS})
    return measured


def measure_abstention(retriever: Retriever, dev: dict[str, QuestionSet], held_out: dict[str, QuestionSet],
                       reviewed_off_topic: list[str] = ()) -> dict:
    """The abstention threshold chosen on the in-domain ``dev`` sets (mlops.evaluation.abstention), with what it
    refuses of every in-domain set and answers of the off-topic sets and of the questions annotators marked off-topic
    (the dataset's off_topic.jsonl): report.json's ``"abstention"``."""
    confidences = {which: retriever.confidences(qs.questions) for which, qs in {**dev, **held_out}.items() if qs.questions}
    threshold = abstention.choose_threshold({which: confidences[which] for which in dev if which in confidences})
    off_topic = {which: [(q.question, q.kind) for q in load_off_topic_questions(path)] for which, path in OFF_TOPIC_SETS.items()}
    if reviewed_off_topic:
        off_topic[REVIEWED_OFF_TOPIC] = [(q, "reviewed") for q in reviewed_off_topic]
    return {
        "threshold": threshold,
        "chosen_on": sorted(dev),
        "max_dev_refused": abstention.MAX_DEV_REFUSED,
        "in_domain_refused": {which: abstention.refused_share(c, threshold) for which, c in confidences.items()},
        "off_topic_answered": {which: abstention.answered_by_kind(retriever.confidences([q for q, _ in qs]), [k for _, k in qs], threshold)
                               for which, qs in off_topic.items()},
        "targets": {"in_domain_refused": abstention.TARGET_IN_DOMAIN_REFUSED, "off_topic_answered": abstention.TARGET_OFF_TOPIC_ANSWERED},
    }


def _trained_rules(run_id: str) -> set[str]:
    """The question rules the training run used, from the configuration it logged."""
    return set(tracking.load_config(run_id, "train", TrainConfig).rules)


def _plot(systems: dict, out: Path) -> list[Path]:
    names = list(systems)
    keys = [f"recall_at_{k}" for k in KS] + ["mrr"]
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, which in zip(axes, ("test", "natural"), strict=True):
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            values = [systems[name][which]["overall"][k] for k in keys]
            ax.bar(np.arange(len(keys)) + i * width, values, width, label=name)
        ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys)
        ax.set_title(f"{which} questions (n={systems[names[0]][which]['overall']['count']})")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "metrics.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    for which in ("test", "natural"):
        slices = sorted(systems["candidate"][which]["slices"])
        fig, ax = plt.subplots(figsize=(max(8, len(slices) * 0.6), 4.5))
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            ax.bar(np.arange(len(slices)) + i * width, [systems[name][which]["slices"][s]["recall_at_5"] for s in slices], width, label=name)
        ax.set_xticks(np.arange(len(slices)) + 0.4 - width / 2, slices, rotation=45, ha="right")
        ax.set_ylabel("recall@5")
        ax.set_ylim(0, 1)
        ax.set_title(f"recall@5 per {'category' if which == 'test' else 'topic'} ({which} questions)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out / f"slices_{which}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def evaluate(settings: Settings, run_id: str | None, config: GateConfig, echo=print) -> dict:
    """Evaluate a training run (the latest by default); log the report; raise GateFailed if the gate fails."""
    client = tracking.configure(settings)
    run = tracking.get_run(client, run_id) if run_id else tracking.latest_training_run(client)
    run_id = run.info.run_id
    folder = tracking.download(client, run_id, tracking.DATASET_ARTIFACT, settings.cache_dir)
    corpus = dataset.load_corpus(folder)
    by_name = {s.symbol: s for s in corpus}
    trained_rules = _trained_rules(run_id)
    sets = {
        "test": split_questions(folder, "test", by_name, TEMPLATED_RULES, strict=True),
        "natural": _natural_set(by_name, settings.natural_questions or NATURAL_QUESTIONS),
        "natural_dev": _natural_set(by_name, settings.natural_dev or NATURAL_DEV),
        GATE_SET: split_questions(folder, "test", by_name, trained_rules),
    }
    from_users = split_questions(folder, "train", by_name, set(FEEDBACK_RULES), strict=True, slice_by_rule=True)
    if from_users.questions:
        sets[FEEDBACK_SET] = from_users
    labelled_test = split_questions(folder, "test", by_name, set(LABELLED_RULES), strict=True)
    if labelled_test.questions:  # the labelled questions of held-out symbols: natural wording, never trained on
        sets[LABELLED_TEST_SET] = labelled_test
    fresh = load_natural_questions(NATURAL_FRESH)
    if all(name in by_name for q in fresh for name in q.expected):  # the shipped corpus (not a test's own package)
        indexed = {p.symbol for p in dataset.load_split(folder, "train") if p.rule in LABELLED_RULES}  # and expanded
        sets[FRESH_SET] = QuestionSet(questions=[q.question for q in fresh], expected=[set(q.expected) for q in fresh],
                                      slices=["labelled" if indexed & set(q.expected) else "unlabelled" for q in fresh])
    validation = split_questions(folder, "validation", by_name, TEMPLATED_RULES, strict=True)
    counts = f"{len(sets['test'].questions)} test, {len(sets['natural'].questions)} natural and {len(sets['natural_dev'].questions)} dev questions"
    echo(f"evaluating run {run_id} on {counts}, corpus of {len(corpus)} symbols")
    # The counts show a fallback to the whole split (no rules logged, or none that made a test question).
    echo(f"  the gate compares the encoders on {len(sets[GATE_SET].questions)} test questions of the rules the run trained on"
         f" ({', '.join(sorted(trained_rules)) or 'none logged'})")

    def encode_corpus_with(label: str, model_dir: Path, symbols: list[Symbol] = corpus) -> tuple[Encoder, np.ndarray]:
        echo(f"  encoding the corpus with the {label} encoder")
        encoder = Encoder(model_dir)
        return encoder, corpus_embeddings(encoder, symbols, settings.cache_dir)

    cand_encoder, cand_emb = encode_corpus_with("candidate", tracking.download(client, run_id, tracking.MODEL_ARTIFACT, settings.cache_dir))
    weight, sweep = choose_bm25_weight(cand_encoder, corpus, cand_emb, validation, config.metric)
    echo(f"  BM25 fusion weight {weight} (validation {config.metric}: {sweep})")
    out = settings.reports_dir / run_id
    out.mkdir(parents=True, exist_ok=True)
    echo("  exporting the candidate encoder to ONNX (graph-optimised fp32, and INT8)")
    onnx_files = export_onnx(cand_encoder, out / tracking.ONNX_ARTIFACT, echo)
    encoders = {TORCH_FP32: cand_encoder, **{v: OnnxEncoder(out / tracking.ONNX_ARTIFACT, v) for v in VARIANT_FILES}}
    variants = measure_variants(encoders, shipped_settings(weight), corpus, cand_emb,
                                {"validation": validation, "natural_dev": sets["natural_dev"]}, sets["test"].questions)
    faults = variant_faults(variants)
    served = choose_variant(variants, faults)
    for variant, figures in variants.items():
        figures.update({**onnx_files.get(variant, {}), "deployable": faults[variant] is None, "fault": faults[variant]})
        echo(f"  {variant}: {figures['questions_per_second']:.0f} questions/s in process; "
             + "; ".join(f"{which} recall@5 {f['recall@5']:.3f} ({f['delta_recall@5']:+.3f}), MRR {f['mrr']:.3f} ({f['delta_mrr']:+.3f})"
                         for which, f in figures["sets"].items())
             + ("" if faults[variant] is None else f"; not deployable: {faults[variant]}"))
    echo(f"  serving {served}: the fastest whose loss is at most {VARIANT_MAX_LOSS} on every set")
    served_settings = shipped_settings(weight).model_copy(update={"encoder_variant": served})
    held_out = {w: sets[w] for w in ("test", "natural", FRESH_SET, LABELLED_TEST_SET) if w in sets}
    abstained = measure_abstention(Retriever.from_settings(served_settings, encoders[served], corpus, cand_emb),
                                   {"validation": validation, "natural_dev": sets["natural_dev"]}, held_out,
                                   [q.question for q in dataset.load_off_topic(folder)])
    threshold, refused, answered = abstained["threshold"], abstained["in_domain_refused"], abstained["off_topic_answered"]
    echo(f"  abstains below confidence {threshold:.3f} (at most {abstention.MAX_DEV_REFUSED:.0%} of validation and dev questions refused):"
         f" refuses {refused['natural']:.1%} of natural questions, answers {answered['off_topic_test']['answered']:.1%} of off-topic test questions")
    # Baselines are the plain methods: no fusion, no public-API prior, no query or document expansion.
    plain, plain_emb = without_labelled_questions(corpus, cand_emb)
    base_encoder, base_emb = encode_corpus_with("untuned", base_model_path(), plain)
    retrievers = {
        "candidate": Retriever.from_settings(served_settings.model_copy(update={"abstain_below": threshold}), encoders[served], corpus, cand_emb),
        "candidate_dense": Retriever(cand_encoder, plain, plain_emb, 0.0, public_api_prior=0.0),
        "untuned": Retriever(base_encoder, plain, base_emb, 0.0, public_api_prior=0.0),
        "bm25": Retriever(None, plain, None, 1.0, public_api_prior=0.0),
    }
    champion = registry.by_alias(client, settings.model_name, registry.CHAMPION)
    if champion is not None:
        champ_encoder, champ_emb = encode_corpus_with(
            f"champion (version {champion.version})", tracking.download(client, champion.run_id, tracking.MODEL_ARTIFACT, settings.cache_dir)
        )
        # As it serves: with the settings it was evaluated with, which may be an older thesaurus than the candidate's.
        retrievers["champion"] = Retriever.from_settings(registry.measured_settings(champion),
                                                         served_query_encoder(settings, client, champion, champ_encoder), corpus, champ_emb)

    systems = {name: {which: score(r, qs) for which, qs in sets.items()} for name, r in retrievers.items()}
    throughput = search_throughput(retrievers["candidate"], sets["test"].questions)
    echo(f"  in-process search (encode + fused scoring, batched): {throughput:.0f} questions/s")
    if FEEDBACK_SET in sets:
        echo(f"  on the {len(sets[FEEDBACK_SET].questions)} questions users taught it (trained on, not gated): "
             + ", ".join(f"{name} r@1 {s[FEEDBACK_SET]['overall']['recall_at_1']:.3f}" for name, s in systems.items()))
    passed, reason, checks = decide_gate(systems, config)
    report = {
        "run_id": run_id,
        "dataset_hash": run.data.tags.get(tracking.TAG_DATASET),
        "champion_version": champion.version if champion else None,
        "bm25_weight": weight,
        "search_questions_per_second": throughput,
        "bm25_weight_sweep_validation": sweep,
        "served_variant": served,
        "variants": variants,
        "abstention": abstained,
        "systems": systems,
        "gate": {"passed": passed, "reason": reason, "metric": config.metric, "tolerance": config.tolerance, "checks": checks},
    }
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    plots = _plot(systems, out)
    _log(client, run_id, report, out, plots, retrievers["candidate"].settings)
    tracking.log_config(run_id, "gate", config)
    _print_table(systems, echo)
    echo(f"report: {out / 'report.json'}")
    for check in checks:
        echo(f"  gate: {check['check']}: {check['values'][0]:.4f} vs {check['values'][1]:.4f}, {'passed' if check['passed'] else 'FAILED'}")
    if not passed:
        raise GateFailed(f"quality gate failed for run {run_id}: {reason}")
    echo(f"quality gate passed: {reason}")
    return report


def _log(client, run_id: str, report: dict, out: Path, plots: list[Path], retrieval: RetrievalSettings) -> None:
    candidate = report["systems"]["candidate"]
    logged = SETS + ((FEEDBACK_SET,) if FEEDBACK_SET in candidate else ())
    metrics = {f"{which}_{k}": v for which in logged for k, v in candidate[which]["overall"].items() if k != "count"}
    for name, system in report["systems"].items():
        if name != "candidate":
            metrics[f"baseline_{name}_natural_recall_at_5"] = system["natural"]["overall"]["recall_at_5"]
    metrics["search_questions_per_second"] = report["search_questions_per_second"]
    metrics["abstain_below"] = report["abstention"]["threshold"]
    metrics.update({f"refused_{which}": share for which, share in report["abstention"]["in_domain_refused"].items()})
    metrics.update({f"answered_{which}": f["answered"] for which, f in report["abstention"]["off_topic_answered"].items()})
    with mlflow.start_run(run_id=run_id):
        mlflow.log_artifact(str(out / "report.json"), "evaluation")
        mlflow.log_artifacts(str(out / tracking.ONNX_ARTIFACT), tracking.ONNX_ARTIFACT)  # export takes the served variant from here
        for variant, figures in report["variants"].items():
            metrics[f"variant_{variant}_questions_per_second"] = figures["questions_per_second"]
            for which, values in figures["sets"].items():
                metrics.update({f"variant_{variant}_{which}_{m.replace('@', '_at_')}": values[m] for m in VARIANT_METRICS})
        mlflow.log_metrics(metrics)
        for plot in plots:
            mlflow.log_artifact(str(plot), "evaluation")
        tracking.log_retrieval_settings(client, run_id, retrieval.digest(), retrieval.model_dump())  # before the verdict
        mlflow.set_tags({
            tracking.TAG_GATE: "passed" if report["gate"]["passed"] else "failed",
            tracking.TAG_GATE_REASON: report["gate"]["reason"],
            tracking.TAG_BM25_WEIGHT: str(report["bm25_weight"]),
            tracking.TAG_ENCODER_VARIANT: report["served_variant"],
        })


def _print_table(systems: dict, echo) -> None:
    echo(f"  {'system':<16}" + "".join(f"{which.removeprefix('natural_') + ' ' + k:>14}" for which in SETS for k in ("r@1", "r@5", "mrr")))
    for name, s in systems.items():
        row = [s[which]["overall"][k] for which in SETS for k in ("recall_at_1", "recall_at_5", "mrr")]
        echo(f"  {name:<16}" + "".join(f"{v:>14.3f}" for v in row))
