""".github/scripts/submit_workflow.py against a local fake Argo Server: the request it sends (path, token, a body that
is exactly hera's WorkflowSubmitRequest), the URL it prints, its one-line errors; and release.yaml's submit step,
run as written, sends the pushed tag as `release` and `image-tag` and reports the workflow's URL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from hera.workflows import models as hera_models  # hera==7.1.0: pinned in requirements.lock

from support.paths import ROOT

SCRIPT = ROOT / ".github" / "scripts" / "submit_workflow.py"
RELEASE = ROOT / ".github" / "workflows" / "release.yaml"
TEMPLATE = "train-evaluate-register-deploy"
TOKEN = "fake-argo-token"


def argo_workflow(namespace: str, template: str, parameters: list[str], name: str) -> dict:
    """What Argo Server answers to a submit: the created Workflow."""
    return {
        "metadata": {"name": name, "generateName": f"{template}-", "namespace": namespace,
                     "uid": "0b7c9f0e-3d5a-4a8e-9a36-1f2d3c4b5a69", "resourceVersion": "48213",
                     "creationTimestamp": "2025-01-01T00:00:00Z",
                     "labels": {"workflows.argoproj.io/workflow-template": template}},
        "spec": {"arguments": {"parameters": [dict(zip(("name", "value"), p.split("=", 1), strict=True)) for p in parameters]},
                 "workflowTemplateRef": {"name": template}},
        "status": {},
    }


class FakeArgo:
    """An Argo Server on 127.0.0.1 (a free port) that records every request and answers what it is told to."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status, self.answer = 200, None  # None: the Workflow Argo would create from the request
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body})
                answer = fake.answer
                if answer is None:
                    sent = json.loads(body)
                    answer = argo_workflow(sent["namespace"], sent["resourceName"], sent["submitOptions"]["parameters"],
                                           f"{sent['resourceName']}-x7k2p")
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if 300 <= fake.status < 400:
                    self.send_header("Location", "http://elsewhere.example.org/api/v1/workflows/argo/submit")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def argo():
    with FakeArgo() as server:
        yield server


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ARGO_TOKEN" and not k.lower().endswith("_proxy")}
    return {**env, **extra}


def run_script(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = clean_env(**({"ARGO_TOKEN": token} if token is not None else {}))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_submits_the_template_with_exactly_the_given_parameters(argo: FakeArgo):
    result = run_script("--server", argo.url, "--namespace", "argo", "--template", TEMPLATE,
                        "-p", "release=v1.2.0", "-p", "image-tag=v1.2.0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{argo.url}/workflows/argo/{TEMPLATE}-x7k2p\n"
    [request] = argo.requests
    assert request["path"] == "/api/v1/workflows/argo/submit"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Content-Type"] == "application/json"
    sent = json.loads(request["body"])
    parsed = hera_models.WorkflowSubmitRequest.model_validate_json(request["body"], strict=True)
    assert parsed.model_dump(by_alias=True, exclude_none=True) == sent  # no field hera's model does not know
    assert parsed.namespace == "argo"
    assert parsed.resource_kind == "WorkflowTemplate"
    assert parsed.resource_name == TEMPLATE
    assert parsed.submit_options.parameters == ["release=v1.2.0", "image-tag=v1.2.0"]
    assert parsed.submit_options.model_dump(exclude_none=True) == {"parameters": ["release=v1.2.0", "image-tag=v1.2.0"]}


def test_the_fake_answers_like_argo():
    answer = argo_workflow("argo", TEMPLATE, ["release=v1.2.0"], f"{TEMPLATE}-x7k2p")
    workflow = hera_models.Workflow.model_validate(answer)
    assert workflow.metadata.name == f"{TEMPLATE}-x7k2p"
    assert workflow.spec.workflow_template_ref.name == TEMPLATE


def test_a_token_with_its_scheme_is_sent_as_is_and_a_base_path_is_kept(argo: FakeArgo):
    result = run_script("--server", f"{argo.url}/argo/", "--template", TEMPLATE, "-p", "release=v2.0.0",
                        token="Bearer v2:abc.def")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{argo.url}/argo/workflows/argo/{TEMPLATE}-x7k2p\n"
    [request] = argo.requests
    assert request["path"] == "/argo/api/v1/workflows/argo/submit"
    assert request["headers"]["Authorization"] == "Bearer v2:abc.def"


def test_a_value_may_hold_equals_signs(argo: FakeArgo):
    result = run_script("--server", argo.url, "--template", TEMPLATE, "-p", "note=a=b")
    assert result.returncode == 0, result.stderr
    assert json.loads(argo.requests[0]["body"])["submitOptions"]["parameters"] == ["note=a=b"]


def test_forbidden_is_one_line_with_the_status_and_argos_message(argo: FakeArgo):
    message = ('workflowtemplates.argoproj.io "train-evaluate-register-deploy" is forbidden: User '
               '"system:serviceaccount:argo:github-release" cannot get resource "workflowtemplates" in API group '
               '"argoproj.io" in the namespace "argo"')
    argo.status, argo.answer = 403, {"code": 7, "message": message, "details": []}
    result = run_script("--server", argo.url, "--template", TEMPLATE, "-p", "release=v1.2.0")
    assert_one_line_error(result, "403", message)
    assert result.returncode == 1


def test_an_error_page_that_is_not_json_is_reported_as_text(argo: FakeArgo):
    argo.status, argo.answer = 502, b"<html><body>\n<h1>502 Bad Gateway</h1>\n</body></html>"
    assert_one_line_error(run_script("--server", argo.url, "--template", TEMPLATE), "502", "Bad Gateway")


def test_a_redirect_is_not_followed_with_the_token(argo: FakeArgo):
    argo.status, argo.answer = 302, b""
    result = run_script("--server", argo.url, "--template", TEMPLATE)
    assert_one_line_error(result, "302", "http://elsewhere.example.org/")
    assert len(argo.requests) == 1


def test_an_answer_without_a_name_is_an_error(argo: FakeArgo):
    argo.answer = {"metadata": {}}
    assert_one_line_error(run_script("--server", argo.url, "--template", TEMPLATE), "metadata.name")


def test_an_unreachable_server_is_one_line():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_script("--server", f"http://127.0.0.1:{port}", "--template", TEMPLATE, "-p", "release=v1.2.0")
    assert_one_line_error(result, f"http://127.0.0.1:{port}", "connection refused")


@pytest.mark.parametrize("bad", ["release", "=v1.2.0", "my key=v", ""])
def test_a_malformed_parameter_is_refused_before_anything_is_sent(argo: FakeArgo, bad: str):
    result = run_script("--server", argo.url, "--template", TEMPLATE, "-p", bad)
    assert_one_line_error(result, "bad parameter", "key=value")
    assert result.returncode == 2
    assert argo.requests == []


def test_a_parameter_given_twice_is_refused(argo: FakeArgo):
    result = run_script("--server", argo.url, "--template", TEMPLATE, "-p", "release=v1", "-p", "release=v2")
    assert_one_line_error(result, "'release' given twice")
    assert argo.requests == []


@pytest.mark.parametrize("token", [None, "", "  \n"])
def test_a_missing_token_is_refused_before_anything_is_sent(argo: FakeArgo, token: str | None):
    result = run_script("--server", argo.url, "--template", TEMPLATE, "-p", "release=v1.2.0", token=token)
    assert_one_line_error(result, "ARGO_TOKEN")
    assert result.returncode == 2
    assert argo.requests == []


def test_the_server_must_be_an_http_url(argo: FakeArgo):
    assert_one_line_error(run_script("--server", "argo.example.org", "--template", TEMPLATE), "--server", "http")


# release.yaml's submit step, executed by bash the way the runner does, with the expressions GitHub would fill in


def submit_step() -> dict:
    jobs = yaml.safe_load(RELEASE.read_text())["jobs"]
    steps = [step for job in jobs.values() for step in job.get("steps", []) if "submit_workflow.py" in step.get("run", "")]
    assert len(steps) == 1, "one step of release.yaml runs submit_workflow.py"
    return steps[0]


def run_submit_step(argo: FakeArgo, tmp_path: Path, tag: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """Run the step's `run` script with bash as the runner does (-e, pipefail), the `python` of this venv on PATH,
    its env with the expressions GitHub would fill in; return the result and the GITHUB_OUTPUT and summary files."""
    step = submit_step()
    expressions = {"${{ github.ref_name }}": tag, "${{ vars.ARGO_SERVER_URL }}": argo.url, "${{ secrets.ARGO_TOKEN }}": TOKEN}
    env = {}
    for name, value in step.get("env", {}).items():
        for expression, filled in expressions.items():
            value = value.replace(expression, filled)
        assert "${{" not in value, f"unexpected expression in the step's env: {name}={value}"
        env[name] = value
    assert "${{" not in step["run"], "the script reads expressions through env, never inline"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # this venv (a symlink would lose it)
    (bin_dir / "python").chmod(0o755)
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    output.touch()
    summary.touch()
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={**clean_env(**env), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                                 "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)})
    return result, output, summary


def test_the_release_step_submits_the_tag_as_release_and_image_tag(argo: FakeArgo, tmp_path: Path):
    tag = "v1.4.0"
    result, output, summary = run_submit_step(argo, tmp_path, tag)
    assert result.returncode == 0, result.stdout + result.stderr
    [request] = argo.requests
    assert request["path"] == "/api/v1/workflows/argo/submit"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    sent = hera_models.WorkflowSubmitRequest.model_validate_json(request["body"])
    assert sent.resource_kind == "WorkflowTemplate"
    assert sent.resource_name == TEMPLATE
    assert sorted(sent.submit_options.parameters) == sorted([f"release={tag}", f"image-tag={tag}"])
    url = f"{argo.url}/workflows/argo/{TEMPLATE}-x7k2p"
    assert f"url={url}" in output.read_text().splitlines()
    assert url in summary.read_text()
    assert url in result.stdout


def test_the_release_step_fails_when_argo_refuses(argo: FakeArgo, tmp_path: Path):
    argo.status, argo.answer = 403, {"code": 7, "message": "forbidden"}
    result, output, summary = run_submit_step(argo, tmp_path, "v1.4.0")
    assert result.returncode != 0
    assert "403" in result.stderr and "forbidden" in result.stderr
    assert "/workflows/argo/" not in summary.read_text() + output.read_text()
