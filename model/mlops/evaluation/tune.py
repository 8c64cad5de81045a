"""`mlops tune`: hyperparameter search on Ray Tune, with ASHA stopping the trials that fall behind on validation MRR.

Each trial is a real training (mlops.training.train) nested in MLflow under the search's run. Every
``evaluate_every`` steps it scores its encoder on the validation split as `mlops evaluate` does: the corpus encoded
by the model as it is, fused with BM25 at each of evaluate's weights, the best MRR of them reported to Tune
(sweeping the fusion weight costs one encoding, so it is swept rather than sampled). ASHA stops a trial whose MRR
is in the bottom half of those that reached the same step; a stopped trial's MLflow run ends KILLED, tagged
``mlops.stopped_by``.

The best trial's configuration is written as a YAML file that `mlops train --config` reads, so a tuned configuration
is reviewed and committed like code; its header says where it came from.

Trials take a whole machine each (all its cores, or one GPU of several), so they run one after another on CPU and
one per GPU on a GPU node. With ``RAY_ADDRESS`` set (as a Ray job's driver has it, e.g. under KubeRay's RayJob:
workflows/train-evaluate-register-deploy.yaml) the search joins that Ray cluster instead of starting one, each trial
taking one of its GPUs; the dataset travels with the trials, so a worker on another node writes it where it is
missing.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import NamedTuple

import mlflow
import yaml

from mlops.core.errors import MlopsError
from mlops.core.files import write_atomic
from mlops.core.settings import Settings
from mlops.data import dataset
from mlops.lifecycle import tracking
from mlops.training.config import TrainConfig, TuneConfig

METRIC = "validation_mrr"
TAG_STOPPED = "mlops.stopped_by"


class Trial(NamedTuple):
    """What a trial trains and how it scores (everything a Ray worker needs, picklable)."""
    settings: Settings
    base: TrainConfig
    dataset_files: dict[str, bytes]  # mlops.data.dataset.files_of: Tune puts the trial in Ray's object store once
    parent_run_id: str
    evaluate_every: int


def space(config: TuneConfig) -> dict:
    from ray import tune

    return {"learning_rate": tune.loguniform(*config.learning_rate), "batch_size": tune.choice(list(config.batch_sizes)),
            "epochs": tune.choice(list(config.epochs)), "scale": tune.uniform(*config.scale)}


def _validation(folder: Path):
    """The corpus and the validation questions `mlops evaluate` chooses its fusion weight on."""
    from mlops.data.questions import TEMPLATED_RULES
    from mlops.evaluation.evaluate import split_questions

    corpus = dataset.load_corpus(folder)
    return corpus, split_questions(folder, "validation", {s.symbol: s for s in corpus}, TEMPLATED_RULES, strict=True)


def run_trial(sampled: dict, trial: Trial) -> None:
    """One trial, in a Ray worker: train, reporting the validation MRR to Tune at each rung, and after its run has
    ended, the last one (Tune may end a trial on any report, by SystemExit: the run then ends KILLED)."""
    from ray import tune

    from mlops.evaluation.evaluate import choose_bm25_weight
    from mlops.search.retriever import corpus_embeddings
    from mlops.training.train import Progress, train

    config = trial.base.model_copy(update=sampled)
    folder = dataset.restore(trial.settings.datasets_dir, trial.dataset_files)
    corpus, validation = _validation(folder)
    scored: dict = {}

    def score(step: int, encoder, last: bool) -> None:
        weight, sweep = choose_bm25_weight(encoder, corpus, corpus_embeddings(encoder, corpus, None), validation, "mrr")
        mlflow.log_metrics({METRIC: sweep[str(weight)], "validation_bm25_weight": weight}, step=step)
        scored.update({METRIC: sweep[str(weight)], "bm25_weight": weight, "step": step, "run_id": mlflow.active_run().info.run_id})
        if not last:
            tune.report(dict(scored))

    try:
        train(trial.settings, config, folder.name, echo=lambda *_: None, parent_run_id=trial.parent_run_id,
              progress=Progress(trial.evaluate_every, score), keep_model=False)
    except SystemExit:
        tracking.configure(trial.settings).set_tag(scored["run_id"], TAG_STOPPED, f"ASHA at step {scored['step']}")
        raise
    tune.report(dict(scored))


def tune_search(settings: Settings, config: TuneConfig, out: Path, dataset_hash: str | None = None, echo=print) -> Path:
    """Run the search; write the best trial's configuration to ``out`` (atomically) and return it."""
    import ray
    import torch
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    if config.evaluate_every > config.max_steps:
        raise MlopsError(f"--evaluate-every {config.evaluate_every} is more than --max-steps {config.max_steps}: no trial "
                         "would be scored before it ends; lower it")
    if out.suffix not in (".yaml", ".yml"):
        raise MlopsError(f"--out {out}: the tuned configuration is YAML; name it *.yaml")
    folder = dataset.resolve(settings.datasets_dir, dataset_hash)
    dataset_hash = dataset.manifest_of(folder)["hash"]
    client = tracking.configure(settings)
    base = TrainConfig(max_steps=config.max_steps, seed=config.seed)
    with mlflow.start_run(tags={tracking.TAG_STAGE: "tune", tracking.TAG_DATASET: dataset_hash,
                                tracking.TAG_GIT_SHA: tracking.git_sha()}) as parent:
        mlflow.log_params({k: str(v) for k, v in config.model_dump().items()})
        echo(f"tuning: {config.trials} trials of up to {config.max_steps} steps, scored every {config.evaluate_every} on "
             f"validation MRR, ASHA stopping the weaker half at each rung; MLflow run {parent.info.run_id}")
        os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"  # trials resolve paths (git, the dataset) where the search started
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # with verbose=0: Tune prints nothing; the lines below say what happened
        joined = os.environ.get("RAY_ADDRESS")
        ray.init(address=joined, log_to_driver=False, logging_level="WARNING",
                 **({} if joined else {"include_dashboard": False, "num_cpus": os.cpu_count() or 1,
                                       "num_gpus": torch.cuda.device_count()}))
        try:
            trial = Trial(settings, base, dataset.files_of(folder), parent.info.run_id, config.evaluate_every)
            per_trial = trial_resources(ray.cluster_resources())
            echo(f"  each trial takes {per_trial['cpu']} CPU(s) and {per_trial['gpu']} GPU(s) of "
                 f"{'the Ray cluster at ' + joined if joined else 'this machine'}")
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(run_trial, trial=trial), per_trial),
                param_space=space(config),
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode="max", num_samples=config.trials,
                    scheduler=ASHAScheduler(time_attr="step", max_t=config.max_steps, grace_period=config.evaluate_every,
                                            reduction_factor=2),
                    search_alg=tune.search.BasicVariantGenerator(random_state=config.seed)),
                run_config=tune.RunConfig(name=f"tune-{parent.info.run_id}", storage_path=str(settings.reports_dir / "tune"),
                                          verbose=0),
            )
            results = tuner.fit()
        finally:
            ray.shutdown()
        rows = [r for r in results if r.metrics and METRIC in r.metrics]
        if not rows:
            errors = [str(r.error).splitlines()[0] for r in results if r.error]
            raise MlopsError(f"no trial reported a score{': ' + errors[0] if errors else ''}; see {settings.reports_dir / 'tune'}")
        stopped = 0
        for row in sorted(rows, key=lambda r: -r.metrics[METRIC]):
            stopped += _stopped(client, row)
            echo(f"  MRR {row.metrics[METRIC]:.4f} at step {row.metrics['step']}: "
                 + ", ".join(f"{k} {_shown(v)}" for k, v in row.config.items()))
        best = max(rows, key=lambda r: (r.metrics[METRIC], -r.metrics["step"]))  # a tie goes to the shorter training
        mlflow.log_metrics({f"best_{METRIC}": best.metrics[METRIC], "trials_stopped_early": stopped})
        echo(f"  {stopped} of {len(rows)} trials stopped early by ASHA")
        tuned = base.model_copy(update=best.config)
        written = _write(out, tuned, best, parent.info.run_id, dataset_hash)
        mlflow.log_artifact(str(written), "tune")
    echo(f"best: MRR {best.metrics[METRIC]:.4f} (fusion weight {best.metrics['bm25_weight']}); wrote {written}: "
         f"train it with `mlops train --config {written}`")
    return written


def trial_resources(cluster: dict) -> dict:
    """What one trial asks Ray for: a GPU and that GPU's share of the CPUs where the cluster has GPUs, else every CPU
    (a trial trains with all the cores it is given; two side by side would only share them)."""
    gpus, cpus = int(cluster.get("GPU", 0)), int(cluster.get("CPU", 1))
    return {"cpu": max(1, cpus // gpus), "gpu": 1} if gpus else {"cpu": max(1, cpus), "gpu": 0}


def _shown(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _stopped(client, row) -> bool:
    """Whether ASHA stopped the trial (its training run ended KILLED)."""
    return client.get_run(row.metrics["run_id"]).info.status == "KILLED"


def _write(out: Path, tuned: TrainConfig, best, parent_run_id: str, dataset_hash: str) -> Path:
    """The tuned configuration as `mlops train --config` reads it: the fields that differ from the defaults."""
    defaults = TrainConfig().model_dump(mode="json")
    fields = {k: v for k, v in tuned.model_dump(mode="json").items() if v != defaults[k] or k in best.config}
    header = (f"# Tuned by `mlops tune` on {datetime.date.today().isoformat()}: MLflow run {parent_run_id} (dataset "
              f"{dataset_hash}),\n# best trial {best.metrics['run_id']}: validation MRR {best.metrics[METRIC]:.4f} at step {best.metrics['step']} "
              f"(evaluate's fusion weight {best.metrics['bm25_weight']}). Read by `mlops train --config`;\n"
              "# options given on the command line win over it.\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, header + yaml.safe_dump({k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in fields.items()},
                                              sort_keys=True))
    return out
