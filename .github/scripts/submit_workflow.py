#!/usr/bin/env python3
"""Submit an Argo WorkflowTemplate through the Argo Server's REST API and print the new workflow's URL.

    ARGO_TOKEN=... submit_workflow.py --server https://argo.example.org --namespace argo \
        --template train-evaluate-register-deploy -p release=v1.2.0 -p image-tag=v1.2.0

POSTs a WorkflowSubmitRequest (built with hera's typed models) to {server}/api/v1/workflows/{namespace}/submit
(Argo Server's SubmitWorkflow endpoint) with `Authorization: Bearer <ARGO_TOKEN>` and prints
{server}/workflows/{namespace}/{name}, the workflow's page in the Argo UI, on stdout; nothing else goes to stdout.
Any failure is one line on stderr and a non-zero exit: 2 for bad usage (a malformed -p, no ARGO_TOKEN),
1 for the server (an HTTP error with Argo's `message`, a server that cannot be reached, an unexpected answer).

Standalone (stdlib + hera==7.1.0): .github/workflows/release.yaml runs it after `pip install hera==7.1.0`.
The HTTP call is urllib rather than hera's WorkflowsService: that client sends no timeout, keeps only Argo's
message for a few statuses (and fails on an error body without `message`), and drops a path prefix of the
server URL (urljoin); here redirects are also refused, so the token never follows one to another host.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import ssl
import sys
import urllib.error
import urllib.request

PROG = "submit_workflow"
USAGE_ERROR, SERVER_ERROR = 2, 1


class Failure(Exception):
    def __init__(self, message: str, code: int = SERVER_ERROR):
        super().__init__(message)
        self.code = code


def one_line(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_parameters(items: list[str]) -> list[str]:
    """`-p key=value` items, checked: a non-empty key without blanks, each key once; Argo takes them as "key=value"."""
    seen: set[str] = set()
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip() or re.search(r"\s", key):
            raise Failure(f"bad parameter {item!r}: expected -p key=value", USAGE_ERROR)
        if key in seen:
            raise Failure(f"parameter {key!r} given twice", USAGE_ERROR)
        seen.add(key)
    return list(items)


def authorization(token: str | None) -> str:
    """The Authorization header: ARGO_TOKEN as given when it has a scheme ("Bearer v2:..." from `argo auth token`),
    else prefixed with "Bearer " (a bare service-account token)."""
    token = (token or "").strip()
    if not token:
        raise Failure("ARGO_TOKEN is not set: export the Argo Server bearer token as ARGO_TOKEN", USAGE_ERROR)
    return token if len(token.split()) > 1 else f"Bearer {token}"


def request_body(namespace: str, template: str, parameters: list[str]) -> bytes:
    try:
        from hera.workflows.models import SubmitOpts, WorkflowSubmitRequest
    except ImportError:
        raise Failure("hera is not installed: pip install hera==7.1.0", USAGE_ERROR) from None
    request = WorkflowSubmitRequest(namespace=namespace, resource_kind="WorkflowTemplate", resource_name=template,
                                    submit_options=SubmitOpts(parameters=parameters))
    return request.model_dump_json(by_alias=True, exclude_none=True).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a 3xx becomes an HTTPError: the POST (and its token) is not replayed elsewhere


def _argo_message(body: bytes) -> str:
    """Argo's error answer is {"code": N, "message": "...", ...}; anything else is shown as text."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return one_line(text) or "(empty body)"
    if isinstance(data, dict) and data.get("message"):
        return one_line(data["message"])
    return one_line(text)


def _unreachable_reason(error: BaseException) -> str:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, socket.gaierror):
            return "host name not resolved"
        if isinstance(error, TimeoutError):
            return "timed out"
        if isinstance(error, ssl.SSLError):
            return f"TLS error: {one_line(getattr(error, 'verify_message', None) or error.reason or error)}"
        nested = getattr(error, "reason", None)
        if isinstance(nested, BaseException):
            error = nested
            continue
        if isinstance(error, OSError) and error.strerror:
            return one_line(error.strerror)
        error = error.__cause__ or error.__context__
    return "connection failed"


def submit(server: str, namespace: str, body: bytes, auth: str, timeout: float) -> str:
    """POST the submit request; return the new workflow's metadata.name."""
    url = f"{server}/api/v1/workflows/{namespace}/submit"
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": auth, "Content-Type": "application/json", "Accept": "application/json"})
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as response:
            answer = response.read()
    except urllib.error.HTTPError as e:
        where = f" (redirect to {e.headers.get('Location')}; use that URL as --server)" if 300 <= e.code < 400 else ""
        raise Failure(f"Argo Server answered HTTP {e.code} {e.reason} for POST {url}{where}: {_argo_message(e.read())}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise Failure(f"cannot reach the Argo Server at {server}: {_unreachable_reason(e)}") from None
    try:
        name = json.loads(answer)["metadata"]["name"]
        if not isinstance(name, str) or not name:
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise Failure(f"unexpected answer from POST {url} (no metadata.name): {one_line(answer.decode('utf-8', 'replace'), 200)}") from None
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Submit an Argo WorkflowTemplate via the Argo Server and print the workflow's URL.")
    parser.add_argument("--server", required=True, help="Argo Server base URL, e.g. https://argo.example.org")
    parser.add_argument("--namespace", default="argo", help="namespace of the WorkflowTemplate (default: argo)")
    parser.add_argument("--template", required=True, help="WorkflowTemplate name")
    parser.add_argument("-p", "--parameter", dest="parameters", action="append", default=[], metavar="KEY=VALUE",
                        help="workflow parameter (repeatable)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default: 30)")
    args = parser.parse_args(argv)
    try:
        server = args.server.strip().rstrip("/")
        if not re.match(r"https?://[^/\s]+", server):
            raise Failure(f"bad --server {args.server!r}: expected an http(s):// URL", USAGE_ERROR)
        parameters = parse_parameters(args.parameters)
        auth = authorization(os.environ.get("ARGO_TOKEN"))
        name = submit(server, args.namespace, request_body(args.namespace, args.template, parameters), auth, args.timeout)
    except Failure as failure:
        print(f"{PROG}: error: {failure}", file=sys.stderr)
        return failure.code
    print(f"{server}/workflows/{args.namespace}/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
