"""`mlops smoke`: wait until a deployed API serves an expected model version, then check its answers.

Used after a promotion (the Argo workflow's last step, or a person after `mlops promote`): ArgoCD
needs a few minutes to notice the commit and roll Triton, so the API is polled until the version
it reports is the promoted one; then the same smoke question as `mlops deploy` must get five
well-formed answers.
"""

from __future__ import annotations

import time

import requests

from mlops.core.errors import MlopsError
from mlops.core.smoke import SMOKE_QUESTION, SMOKE_TOP_K, check_smoke_answers

POLL_SECONDS = 5.0
REPORT_EVERY_SECONDS = 30.0


def _ask(url: str) -> tuple[str | None, list | str]:
    """(model version, answers) from one /v1/ask, or (None, why not)."""
    try:
        response = requests.post(f"{url}/v1/ask", json={"question": SMOKE_QUESTION, "top_k": SMOKE_TOP_K}, timeout=30)
    except requests.RequestException as e:
        return None, f"unreachable ({type(e).__name__})"
    if response.status_code != 200:
        return None, f"HTTP {response.status_code}"
    try:
        body = response.json()
        return str(body["model_version"]), body["answers"]
    except (ValueError, KeyError, TypeError):
        return None, f"not the QA API's answer ({response.text[:80]!r})"


def smoke(url: str, version: str, timeout: float, echo=print) -> None:
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise MlopsError(f"--url {url!r} is not an http(s) URL, e.g. http://transformers-qa-api.transformers-qa:8080")
    deadline = time.monotonic() + timeout
    next_report = 0.0
    while True:
        served, answers = _ask(url)
        if served == version:
            check_smoke_answers(answers, f"the API at {url}")
            echo(f"{url} serves version {version}; smoke test passed")
            return
        state = f"serves version {served}" if served is not None else answers
        if time.monotonic() >= deadline:
            raise MlopsError(f"after {timeout:.0f}s the API at {url} {state}, not version {version}; "
                             "check the ArgoCD application's sync and health")
        if time.monotonic() >= next_report:
            echo(f"  waiting for {url} to serve version {version} (now: {state})")
            next_report = time.monotonic() + REPORT_EVERY_SECONDS
        time.sleep(POLL_SECONDS)
