"""Publish a registered version to the artifact store (S3 / MinIO) that Triton pods load from.

The layout is the Triton model repository itself, under a bucket: ``<bucket>/<name>/config.pbtxt``
and ``<bucket>/<name>/<version>/...`` (what the chart's init containers copy). The version's files
go first and ``config.pbtxt`` last, and nothing points at a version until `mlops promote` commits
it, so an interrupted publish is never served; publishing again overwrites it.

The endpoint and credentials come from boto3's usual environment variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), as MinIO clients expect.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urlparse

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.lifecycle import registry, tracking
from mlops.lifecycle.export import export_version

TAG_PUBLISHED = "published_uri"


def bucket_of(store: str) -> str:
    parsed = urlparse(store)
    if parsed.scheme != "s3" or not parsed.netloc or parsed.path.strip("/"):
        raise MlopsError(f"model store {store!r} is not an s3://BUCKET URI; set --store or MLOPS_MODEL_STORE, e.g. s3://models")
    return parsed.netloc


def upload_model(repository: Path, name: str, version: str, store: str, echo=print) -> str:
    """Upload ``repository/<name>/<version>/`` then ``repository/<name>/config.pbtxt``; returns the version's URI."""
    import boto3
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = bucket_of(store)
    folder = repository / name / version
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise MlopsError(f"{folder} holds no files to publish; export the version first")
    s3 = boto3.client("s3")
    try:
        for number, path in enumerate(files, 1):
            key = f"{name}/{version}/{path.relative_to(folder).as_posix()}"
            s3.upload_file(str(path), bucket, key)
            echo(f"  [{number}/{len(files)}] s3://{bucket}/{key}")
        s3.upload_file(str(repository / name / "config.pbtxt"), bucket, f"{name}/config.pbtxt")
    except (ClientError, S3UploadFailedError) as e:
        cause = e if isinstance(e, ClientError) else (e.__cause__ or e.__context__)  # upload_file wraps the S3 error
        error = cause.response.get("Error", {}) if isinstance(cause, ClientError) else {"Code": "UploadFailed", "Message": str(e)}
        raise MlopsError(f"the model store refused the upload to s3://{bucket}: {error.get('Code')}: {error.get('Message')}; "
                         "check the bucket exists and the credentials may write to it") from None
    except BotoCoreError as e:
        raise MlopsError(f"cannot upload to s3://{bucket}: {e}; check AWS_ENDPOINT_URL and the credentials") from None
    return f"s3://{bucket}/{name}/{version}"


def publish(settings: Settings, version: str, store: str, echo=print) -> str:
    """Export ``version`` from the registry and upload it; tag the version with where it went."""
    bucket_of(store)  # a bad URI fails before minutes of export
    client = tracking.configure(settings)
    model_version = registry.given_or_candidate(client, settings.model_name, version)
    with tempfile.TemporaryDirectory(prefix="publish-") as scratch:
        repository = Path(scratch)
        export_version(settings, client, model_version, repository, echo=echo)
        uri = upload_model(repository, settings.model_name, str(model_version.version), store, echo)
    client.set_model_version_tag(settings.model_name, str(model_version.version), TAG_PUBLISHED, uri)
    echo(f"published {settings.model_name} version {model_version.version} to {uri}")
    return uri
