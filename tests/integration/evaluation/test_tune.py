"""`mlops tune` on the real Ray Tune with a small budget: trials are real trainings nested under the search's MLflow
run, scored on validation MRR at ASHA's rungs, and the best one's configuration is a file `mlops train --config`
trains from (command-line options winning over it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops.core.settings import Settings
from mlops.evaluation.tune import METRIC, TAG_STOPPED
from mlops.lifecycle import tracking
from mlops.training.config import TrainConfig
from mlops.training.train import Progress, train
from support.cli import assert_clean_error, invoke, run
from support.lifecycle import FAST


def test_a_small_search_writes_the_best_configuration_and_train_reads_it(tmp_path: Path, mini_package: Path):
    home = tmp_path / "home"
    assert invoke("data", "--source", str(mini_package), home=home).returncode == 0
    out = tmp_path / "configs" / "tuned.yaml"
    done = run("tune", "--trials", "2", "--max-steps", "2", "--evaluate-every", "1", "--batch-sizes", "8", "--out", str(out),
               home=home, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(out)  # Ray's own output stays off stdout
    client = tracking.configure(Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    (search,) = client.search_runs([tracking.experiment_id(client)], f"tags.`{tracking.TAG_STAGE}` = 'tune'")
    trials = client.search_runs([tracking.experiment_id(client)], f"tags.`{tracking.TAG_PARENT}` = '{search.info.run_id}'")
    assert len(trials) == 2
    assert all(t.info.status == "FINISHED" or (t.info.status == "KILLED" and t.data.tags[TAG_STOPPED]) for t in trials)
    for trial in trials:
        scored = sorted(m.step for m in client.get_metric_history(trial.info.run_id, METRIC))
        # a rung at each step (an epoch is 3 steps of 8 of the 31 pairs, so --max-steps ends every trial)
        assert scored == [1, 2] and trial.data.params["total_steps"] == "2", scored
        assert not any(a.path == tracking.MODEL_ARTIFACT for a in client.list_artifacts(trial.info.run_id))  # trials keep none
    text = out.read_text()
    assert text.startswith("# Tuned by `mlops tune`") and search.info.run_id in text
    (best,) = [t for t in trials if f"best trial {t.info.run_id}:" in text]
    assert best.data.metrics[METRIC] == max(t.data.metrics[METRIC] for t in trials) == search.data.metrics[f"best_{METRIC}"]
    tuned = yaml.safe_load(text)
    assert set(tuned) == {"learning_rate", "batch_size", "epochs", "scale", "max_steps"}
    assert tuned["learning_rate"] == pytest.approx(float(best.data.params["learning_rate"]), rel=1e-5)  # 6 digits written
    assert tuned["batch_size"] == 8 and tuned["max_steps"] == 2

    trained = run("train", "--config", str(out), "--max-steps", "1", home=home)
    assert trained.returncode == 0, trained.stderr[-3000:]
    params = client.get_run(trained.stdout.strip()).data.params
    assert float(params["learning_rate"]) == pytest.approx(tuned["learning_rate"])
    assert float(params["scale"]) == pytest.approx(tuned["scale"]) and params["max_steps"] == "1"  # the option wins


def test_a_training_stopped_from_its_progress_hook_ends_killed(settings: Settings):
    """Tune ends a trial by SystemExit from its report (ray.train._internal.session, _report_training_result)."""
    seen = []

    def stop(step: int, encoder, last: bool) -> None:
        seen.append((step, last, encoder.model.training))
        raise SystemExit(0)

    with pytest.raises(SystemExit):
        train(settings, TrainConfig(**FAST), echo=lambda *_: None, progress=Progress(2, stop), keep_model=False)
    assert seen == [(2, False, False)]  # scored in eval mode
    client = tracking.configure(settings)
    (stopped,) = client.search_runs([tracking.experiment_id(client)])
    assert stopped.info.status == "KILLED"


@pytest.mark.parametrize(("args", "message"), [
    (["--evaluate-every", "10", "--max-steps", "5"], "--evaluate-every 10 is more than --max-steps 5"),
    (["--out", "tuned.json"], "the tuned configuration is YAML"),
    (["--trials", "0"], "--trials"),
])
def test_tune_mistakes_are_one_line(mlops_home: Path, mini_package: Path, args: list[str], message: str):
    assert invoke("data", "--source", str(mini_package), home=mlops_home).returncode == 0
    assert_clean_error(invoke("tune", *args, home=mlops_home), message)


@pytest.mark.parametrize(("content", "message"), [
    ("learning_rate: 1e-4\nwarp: 9\n", "not training options (warp)"),
    ("- 1\n- 2\n", "not training options"),
    ("learning_rate: [", "--config"),
])
def test_a_bad_config_file_is_one_line(mlops_home: Path, tmp_path: Path, content: str, message: str):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert_clean_error(invoke("train", "--config", str(path), home=mlops_home), message)


def test_the_search_space_tunes_training_options():
    assert {"learning_rate", "batch_size", "epochs", "scale"} <= TrainConfig.model_fields.keys()
