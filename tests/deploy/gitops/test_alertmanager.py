"""Staging's Alertmanager, run for real with the configuration the kube-prometheus-stack chart renders from our values,
sends the thumbs-down alert to the Argo Server's event endpoint as the retraining binding expects it, and nothing else.

The real `alertmanager` (Debian's prometheus-alertmanager, installed by `make system-deps`) runs on 127.0.0.1 with the
rendered alertmanager.yaml. Declared departures: the webhook's host (the Argo Server's cluster address) is a local
receiver that records what it gets, on the same path; the service-account token file is a temporary one; group_wait is
1 s instead of the chart's 30 s; and the alerts are posted to Alertmanager's v2 API as Prometheus's notifier posts them
(the rules' `for:` is half an hour: tests/deploy/gitops/prometheus/alerts_test.yaml tests when they fire)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml

from mlops.core.processes import start_group, stop_group
from mlops.triton.server import free_ports
from support.gitops import application
from support.paths import ROOT

BINDING = next(d for d in yaml.safe_load_all((ROOT / "workflows" / "retrain-on-feedback.yaml").read_text())
               if d and d.get("kind") == "WorkflowEventBinding")
TOKEN = "made-up-service-account-token"


def rendered_config() -> dict:
    result = application("staging", "platform-kube-prometheus-stack-staging")
    if result.missing:
        pytest.skip(result.missing)
    [secret] = [d for d in result.documents if d["kind"] == "Secret" and "alertmanager.yaml" in (d.get("data") or {})]
    return yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))


class Receiver(ThreadingHTTPServer):
    """Records each POST: path, Authorization header, JSON body."""

    def __init__(self):
        self.received: list[tuple[str, str, dict]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append((self.path, self.headers.get("Authorization", ""), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def alert(name: str, **labels: str) -> dict:
    """An alert as Prometheus's notifier posts it (labels: the rule's, the expression's, alertname)."""
    return {"labels": {"alertname": name, **labels}, "annotations": {"summary": f"{name} for the test"},
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "generatorURL": "http://prometheus/graph"}


def test_the_thumbs_down_alert_reaches_the_retraining_event_endpoint_and_no_other_alert_does(tmp_path: Path):
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("alertmanager is not installed: run `make system-deps` (Debian package prometheus-alertmanager)")
    config = rendered_config()
    [retrain] = [r for r in config["receivers"] if r["name"] == "retrain"]
    [webhook] = retrain["webhook_configs"]
    cluster_url = webhook["url"]
    assert cluster_url.startswith("http://argo-workflows-server.argo.svc.cluster.local:2746/api/v1/events/")
    assert webhook["http_config"]["authorization"]["credentials_file"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"

    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    path = cluster_url.removeprefix("http://argo-workflows-server.argo.svc.cluster.local:2746")
    webhook["url"] = f"http://127.0.0.1:{receiver.server_address[1]}{path}"
    (tmp_path / "token").write_text(TOKEN)
    webhook["http_config"]["authorization"]["credentials_file"] = str(tmp_path / "token")
    config["route"]["group_wait"] = "1s"
    config.pop("templates", None)  # the pod's /etc/alertmanager/config/*.tmpl: the chart renders none for us
    (tmp_path / "alertmanager.yaml").write_text(yaml.safe_dump(config))

    port = free_ports(1)[0]
    proc = start_group([binary, f"--config.file={tmp_path / 'alertmanager.yaml'}", f"--storage.path={tmp_path / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], tmp_path / "alertmanager.log")
    try:
        api = f"http://127.0.0.1:{port}/api/v2"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{api}/status", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "alertmanager.log").read_text()
            time.sleep(0.2)
        posted = requests.post(f"{api}/alerts", timeout=5, json=[
            alert("QaThumbsDownRatioHigh", model_version="2", severity="warning", action="retrain"),
            alert("QaAskLatencyHigh", severity="warning"),  # routed to "null"
        ])
        assert posted.ok, posted.text
        deadline = time.monotonic() + 30
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # time for a second (wrong) delivery to show up
    finally:
        stop_group(proc)
        receiver.shutdown()

    assert len(receiver.received) == 1, receiver.received
    [(got_path, authorization, payload)] = receiver.received
    assert got_path == path and authorization == f"Bearer {TOKEN}"
    # What the binding's selector and parameter read (expr-lang, evaluated by the Argo Server; checked field by field).
    discriminator = path.rsplit("/", 1)[1]
    selector = BINDING["spec"]["event"]["selector"]
    assert f'discriminator == "{discriminator}"' in selector and 'payload.status == "firing"' in selector
    assert payload["status"] == "firing"
    selected = re.search(r'\.labels\.alertname == "(\w+)"', selector).group(1)
    assert [a["labels"]["alertname"] for a in payload["alerts"]] == [selected]
    [release] = BINDING["spec"]["submit"]["arguments"]["parameters"]
    assert release["valueFrom"]["event"] == '"feedback-" + payload.commonLabels.model_version'
    assert payload["commonLabels"]["model_version"] == "2"  # the release parameter: feedback-2
