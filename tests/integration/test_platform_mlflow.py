"""Staging's MLflow as the upstream chart renders it with our values, run for real.

The chart's init container writes the basic-auth config by running `sed` over its template, and the server
refuses Host headers it is not told about. Both are run here as rendered: the init container's own shell
script, then the real `mlflow server` with the container's argv and environment. What must differ here is
mapped and named: the pod's /template and /config folders become temporary ones, and the PostgreSQL stores
(the backend and the users) become SQLite files, since no PostgreSQL driver for MLflow is in this venv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from mlops.core.processes import start_group, stop_group
from mlops.triton.server import free_ports
from support.gitops import application

ADMIN, PASSWORD, DB_PASSWORD = "admin", "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba98"


def mlflow_objects() -> tuple[dict, dict]:
    """The rendered Deployment's pod spec and the auth config template."""
    result = application("staging", "platform-mlflow-staging")
    if result.missing:
        pytest.skip(result.missing)
    pod = next(d for d in result.documents if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    template = next(d for d in result.documents if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("auth-ini-template"))
    return pod, template


def write_auth_config(tmp_path: Path, admin_password: str) -> subprocess.CompletedProcess:
    """Run the chart's ini-file-initializer script as the pod would (its /template and /config mapped)."""
    pod, template = mlflow_objects()
    init = next(c for c in pod["initContainers"] if c["name"] == "ini-file-initializer")
    (tmp_path / "template").mkdir(exist_ok=True)
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "template" / "auth_template.ini").write_text(template["data"]["auth_template.ini"])
    script = init["args"][0].replace("/template/", f"{tmp_path}/template/").replace("/config/", f"{tmp_path}/config/")
    env = {"PATH": os.environ["PATH"], "ADMIN_USERNAME": ADMIN, "ADMIN_PASSWORD": admin_password,
           "DB_USERNAME": "qa", "DB_PASSWORD": DB_PASSWORD}
    return subprocess.run([*init["command"], script], env=env, capture_output=True, text=True, timeout=30)


def test_the_auth_config_the_chart_writes_is_what_mlflow_reads(tmp_path: Path, monkeypatch):
    assert write_auth_config(tmp_path, PASSWORD).returncode == 0
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(tmp_path / "config" / "auth_result.ini"))
    from mlflow.server.auth.config import read_auth_config

    config = read_auth_config()
    assert (config.admin_username, config.admin_password) == (ADMIN, PASSWORD)
    assert config.database_uri == f"postgresql+psycopg2://qa:{DB_PASSWORD}@postgresql.mlflow.svc.cluster.local:5432/mlflow_auth"
    assert config.default_permission == "READ"


def test_a_base64_password_breaks_the_charts_sed(tmp_path: Path):
    """Why the bootstrap insists on letters and digits (infra/program.py, PLAIN_PASSWORDS)."""
    done = write_auth_config(tmp_path, "ab/cd+ef==")
    assert done.returncode != 0 and "unknown option to `s'" in done.stderr


def test_the_server_answers_its_cluster_and_public_names_and_refuses_others(tmp_path: Path):
    pod, _ = mlflow_objects()
    assert write_auth_config(tmp_path, PASSWORD).returncode == 0
    config = tmp_path / "config" / "auth_result.ini"
    config.write_text(re.sub(r"database_uri = .*", f"database_uri = sqlite:///{tmp_path / 'auth.db'}", config.read_text()))
    container = pod["containers"][0]
    port = free_ports(1)[0]
    argv = [str(Path(sys.executable).with_name("mlflow"))] + [
        f"--backend-store-uri=sqlite:///{tmp_path / 'mlflow.db'}" if a.startswith("--backend-store-uri") else
        f"--artifacts-destination={tmp_path / 'artifacts'}" if a.startswith("--artifacts-destination") else
        f"--port={port}" if a.startswith("--port") else "--host=127.0.0.1" if a.startswith("--host") else a
        for a in container["args"]]
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"] if "value" in e},
           "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "0123456789abcdef"}
    server = start_group(argv, tmp_path / "server.log", env=env)
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search"

    def ask(host: str, auth=(ADMIN, PASSWORD)) -> int:
        return requests.get(url, params={"max_results": 1}, headers={"Host": host}, auth=auth, timeout=60).status_code

    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if ask("mlflow:5000") in (200, 401):
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, "mlflow server did not answer within 120 s"
            time.sleep(0.5)
        assert ask("mlflow.mlflow.svc.cluster.local:5000") == 200   # the pipeline (workflows/pipeline-config.yaml)
        assert ask("mlflow.203.0.113.10.nip.io") == 200             # GitHub's promotion, through the Ingress
        assert ask("mlflow.mlflow.svc.cluster.local:5000", auth=None) == 401
        assert ask("attacker.example.org") == 403
        assert ask("10.42.0.7:5000") == 403  # the allow-list replaces MLflow's default of private addresses ...
        probe = requests.get(f"http://127.0.0.1:{port}/health", headers={"Host": "10.42.0.7:5000"}, timeout=60)
        assert probe.status_code == 200      # ... but the kubelet's probes (/health, by pod IP) still pass
    finally:
        stop_group(server, grace_s=30)
