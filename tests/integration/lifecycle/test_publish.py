"""`mlops publish`'s upload against a real S3 endpoint: layout, order, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.lifecycle.publish import publish, upload_model
from mlops.triton.server import free_ports
from support.services import s3_server


def exported(root: Path) -> Path:
    """A model repository as `export` writes it: <name>/config.pbtxt and <name>/<version>/..."""
    version = root / "qa" / "3"
    (version / "encoder").mkdir(parents=True)
    (version / "model.py").write_text("adapter")
    (version / "encoder" / "weights.bin").write_bytes(bytes(range(256)))
    (root / "qa" / "config.pbtxt").write_text('name: "qa"')
    return root


def test_upload_writes_the_version_then_the_config(tmp_path: Path):
    uploaded: list[str] = []
    with s3_server("models") as s3:
        uri = upload_model(exported(tmp_path), "qa", "3", "s3://models", echo=uploaded.append)
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"])
        weights = s3.get_object(Bucket="models", Key="qa/3/encoder/weights.bin")["Body"].read()
    assert uri == "s3://models/qa/3"
    assert keys == ["qa/3/encoder/weights.bin", "qa/3/model.py", "qa/config.pbtxt"]
    assert weights == bytes(range(256))
    assert uploaded == ["  [1/2] s3://models/qa/3/encoder/weights.bin", "  [2/2] s3://models/qa/3/model.py"]


def test_a_missing_bucket_is_named(tmp_path: Path):
    with s3_server(), pytest.raises(MlopsError, match=r"refused the upload to s3://models: NoSuchBucket: .*check the bucket exists"):
        upload_model(exported(tmp_path), "qa", "3", "s3://models", echo=lambda *_: None)


def test_an_unreachable_store_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_ports(1)[0]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(MlopsError, match=r"cannot upload to s3://models: .*check AWS_ENDPOINT_URL and the credentials"):
        upload_model(exported(tmp_path), "qa", "3", "s3://models", echo=lambda *_: None)


@pytest.mark.parametrize("store", ["models", "http://minio:9000/models", "s3://", "s3://models/sub/folder"])
def test_only_a_bucket_uri_is_accepted(tmp_path: Path, store: str):
    with pytest.raises(MlopsError, match="is not an s3://BUCKET URI"):
        upload_model(exported(tmp_path), "qa", "3", store, echo=lambda *_: None)


def test_nothing_to_publish(tmp_path: Path):
    (tmp_path / "qa" / "3").mkdir(parents=True)
    with pytest.raises(MlopsError, match="holds no files to publish"):
        upload_model(tmp_path, "qa", "3", "s3://models", echo=lambda *_: None)


def test_publishing_uploads_exactly_what_triton_passed_its_tests_with(settings: Settings, champion):
    """In the layout the chart fetches, and the version records where it went."""
    client, version = champion.client, champion.version
    live = settings.triton_repository / settings.model_name
    with s3_server("models") as s3:
        assert publish(settings, version, "s3://models", echo=lambda *_: None) == f"s3://models/{settings.model_name}/{version}"
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"])
        files = sorted(p for p in live.rglob("*") if p.is_file() and "__pycache__" not in p.parts)  # Triton's bytecode
        assert keys == sorted(f"{settings.model_name}/{p.relative_to(live).as_posix()}" for p in files)
        for path in files:
            key = f"{settings.model_name}/{path.relative_to(live).as_posix()}"
            assert s3.get_object(Bucket="models", Key=key)["Body"].read() == path.read_bytes(), key
    assert client.get_model_version(settings.model_name, version).tags["published_uri"] == f"s3://models/{settings.model_name}/{version}"
