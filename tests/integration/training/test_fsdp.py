"""`mlops train --strategy fsdp` with 2 processes trains the weights the same run under DDP does, records the strategy
it used, and with one process uses neither."""

from __future__ import annotations

from pathlib import Path

from mlops.core.settings import Settings
from mlops.lifecycle import tracking
from mlops.search.encoder import Encoder, base_model_path
from mlops.training.config import TrainConfig
from mlops.training.train import train
from support.cli import assert_clean_error, invoke, run
from support.lifecycle import FAST

TRAIN = ["train", "--nproc-per-node", "2", "--batch-size", "8", "--epochs", "3", "--max-steps", "8", "--seed", "3"]


def test_fsdp_trains_the_weights_ddp_does(tmp_path: Path, mini_package: Path):
    home = tmp_path / "home"
    assert invoke("data", "--source", str(mini_package), home=home).returncode == 0
    client = tracking.configure(Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    trained = {}
    for strategy in ("ddp", "fsdp"):
        done = run(*TRAIN, "--strategy", strategy, home=home)
        assert done.returncode == 0, done.stderr[-3000:]
        run_id = done.stdout.strip()
        assert client.get_run(run_id).data.params["strategy_used"] == strategy
        trained[strategy] = Encoder(tracking.download(client, run_id, tracking.MODEL_ARTIFACT, tmp_path / "cache"),
                                    device="cpu").model.state_dict()
    base = Encoder(base_model_path(), device="cpu").model.state_dict()
    ddp, fsdp = trained["ddp"], trained["fsdp"]
    assert ddp.keys() == fsdp.keys() == base.keys()  # the saved model is whole, under the model's own names

    def norm(a: dict, b: dict) -> float:
        return sum((a[k].float() - b[k].float()).norm() ** 2 for k in a).item() ** 0.5

    # Eight steps move the weights; the strategies differ only in the order their reductions sum floats, which
    # AdamW's normalised steps carry on (1e-5 of the distance moved here, measured).
    moved = norm(ddp, base)
    assert moved > 0.01
    assert norm(ddp, fsdp) <= 1e-3 * moved, (norm(ddp, fsdp), moved)


def test_one_process_uses_no_strategy(settings: Settings):
    run_id = train(settings, TrainConfig(**FAST, strategy="fsdp"), echo=lambda *_: None)
    params = tracking.configure(settings).get_run(run_id).data.params
    assert params["strategy"] == "fsdp" and params["strategy_used"] == "none"


def test_an_unknown_strategy_is_one_line(mlops_home: Path, mini_package: Path):
    assert invoke("data", "--source", str(mini_package), home=mlops_home).returncode == 0
    assert_clean_error(invoke("train", "--strategy", "zero3", home=mlops_home), "--strategy")
