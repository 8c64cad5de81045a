"""Real servers for tests: PostgreSQL (Debian's `postgresql`), an S3 endpoint (moto's server, speaking
the S3 HTTP API as MinIO does), an MLflow tracking server (`mlflow server` with basic auth, as staging
runs it), the API process (`mlops serve`), and a bare git remote holding this repository's gitops/ tree.

Both listen on 127.0.0.1 on free ports and are stopped by the fixture that started them. `make test`
installs the Debian packages first (`make system-deps`); without them these tests fail with a line
saying so rather than skipping, so CI cannot pass without really exercising them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops.core.processes import start_group, stop_group
from mlops.triton.server import free_ports

MLOPS = str(Path(sys.executable).with_name("mlops"))
ROOT = Path(__file__).resolve().parents[2]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def clone(remote: Path, path: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(remote), str(path)], check=True)
    git(path, "config", "user.email", "ci@example.org")
    git(path, "config", "user.name", "CI")
    return path


def push_commit(remote: Path, work: Path, name: str, text: str, message: str, *, base: str | None = None, ref: str = "main") -> str:
    """Clone ``remote`` into ``work`` (reset to ``base`` if given), commit file ``name`` holding ``text``, push it to ``ref``;
    returns the new commit's sha."""
    clone(remote, work)
    if base:
        git(work, "reset", "--quiet", "--hard", base)
    (work / name).write_text(text)
    git(work, "add", name)
    git(work, "commit", "--quiet", "-m", message)
    git(work, "push", "--quiet", "origin", f"HEAD:{ref}")
    return git(work, "rev-parse", "HEAD").strip()


def gitops_remote(tmp_path: Path, state: dict[str, tuple[str, str]] | None = None) -> Path:
    """A bare remote holding this repository's gitops/ tree (charts and environments) and the bootstrap's root
    Application (which renders it) on main; ``state`` sets environments' (model version, image tag) first ("" for
    nothing promoted yet)."""
    from mlops.release.layout import write_image_tag, write_model_version

    seed = tmp_path / "seed"
    shutil.copytree(ROOT / "gitops", seed / "gitops")
    shutil.copytree(ROOT / "infra" / "ansible" / "roles" / "argocd", seed / "infra" / "ansible" / "roles" / "argocd")
    for env, (version, tag) in (state or {}).items():
        write_model_version(seed, env, version)
        write_image_tag(seed, env, tag)
    git(seed.parent, "init", "--quiet", "-b", "main", str(seed))
    git(seed, "-c", "user.email=a@b", "-c", "user.name=seed", "add", ".")
    git(seed, "-c", "user.email=a@b", "-c", "user.name=seed", "commit", "--quiet", "-m", "seed")
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(seed), str(bare)], check=True)
    return bare


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        pytest.fail("PostgreSQL server binaries are missing (Debian package `postgresql`): run `make system-deps`")
    return found[-1].parent


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster; yields its SQLAlchemy URL."""
    bindir = _postgres_bin()
    # Not under pytest's tmp_path: its parents are private to root, and the server must not run as root.
    root = Path(tempfile.mkdtemp(prefix="qa-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_ports(1)[0]
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)  # noqa: E731
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "qa", "--auth=trust", "-E", "UTF8")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
            "-o", f"-h 127.0.0.1 -p {port} -k {root} -c fsync=on", "start")
        yield f"postgresql://qa@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def s3_server(*buckets: str) -> Iterator[object]:
    """An S3 endpoint on 127.0.0.1 with ``buckets``; while it runs, boto3 in this process and its
    children points at it. Yields a boto3 client for checking what landed."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_ports(1)[0]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        # moto keeps its state per process, not per server: start every server empty.
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"), timeout=10).close()
        with pytest.MonkeyPatch.context() as monkeypatch:
            for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test-key",
                               "AWS_SECRET_ACCESS_KEY": "test-secret-key", "AWS_DEFAULT_REGION": "us-east-1"}.items():
                monkeypatch.setenv(key, value)
            client = boto3.client("s3")
            for bucket in buckets:
                client.create_bucket(Bucket=bucket)
            yield client
    finally:
        server.stop()


@dataclass(frozen=True)
class MlflowServer:
    url: str
    username: str
    password: str


@contextmanager
def mlflow_server(root: Path, artifacts_destination: str) -> Iterator[MlflowServer]:
    """`mlflow server --app-name basic-auth` on 127.0.0.1, backend SQLite under ``root``, artifacts proxied to
    ``artifacts_destination`` (an s3:// bucket on :func:`s3_server`, which must be running). The admin user
    is what the pipeline logs in as (the Secret argo/mlops-pipeline-mlflow)."""
    root.mkdir(parents=True, exist_ok=True)
    server = MlflowServer(url=f"http://127.0.0.1:{free_ports(1)[0]}", username="admin", password=secrets.token_urlsafe(16))
    config = root / "basic_auth.ini"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = sqlite:///{root / 'basic_auth.db'}\nadmin_username = {server.username}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    # MLflow's basic-auth app needs a CSRF secret and an admin password of 12 characters or more; the server's job
    # runner (GenAI jobs, a second process) is off: it halves the start and no tracking call uses it.
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_PASSWORD": server.password,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(16), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = root / "mlflow-server.log"
    proc = start_group(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--app-name", "basic-auth",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--serve-artifacts", "--artifacts-destination", artifacts_destination,
         "--host", "127.0.0.1", "--port", server.url.rsplit(":", 1)[1], "--workers", "1"],
        log, env=env)
    try:
        _wait_for_mlflow(server, proc, log)
        yield server
    finally:
        stop_group(proc, grace_s=30)


def _wait_for_mlflow(server: MlflowServer, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            answer = requests.get(f"{server.url}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                                  auth=(server.username, server.password), timeout=2)
            if answer.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"mlflow server was not ready after {timeout_s} s: {log.read_text()[-2000:]}")


class ApiProcess:
    """`mlops serve` in its own process group, on a free port; with ``triton_url`` None it starts Triton itself."""

    def __init__(self, triton_url: str | None, home: Path, database_url: str | None = None) -> None:
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MLOPS_HOME": str(home)}
        # The MLflow store and the feedback database are the ones under `home` unless a test says otherwise
        # (mlflow.set_tracking_uri in an earlier test leaves MLFLOW_TRACKING_URI in os.environ).
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("DATABASE_URL", None)
        if database_url:
            env["DATABASE_URL"] = database_url
        home.mkdir(parents=True, exist_ok=True)
        self.log = (home / f"api-{self.port}.log").open("wb")
        command = [MLOPS, "serve", "--port", str(self.port)] + (["--triton-url", triton_url] if triton_url else [])
        self.proc = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_healthy()

    def _wait_healthy(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mlops serve exited with {self.proc.returncode}: {Path(self.log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"mlops serve was not healthy after {timeout_s} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)
        self.log.close()
