"""No credentials in git: every tracked file is scanned for things that look like one."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from support.paths import ROOT

PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "OpenStack application credential secret": re.compile(r"OS_APPLICATION_CREDENTIAL_SECRET\s*=\s*['\"]?[A-Za-z0-9_-]{16,}"),
    # a password/secret key given a literal value (not a reference, a placeholder or an environment lookup)
    "literal password": re.compile(r"(?i)(?:password|passwd|secret_key|api_key)\s*[:=]\s*['\"][^'\"$<{]{8,}['\"]"),
    # user:secret@host, except the documented placeholder `user:password@host`
    "credentials in a URL": re.compile(r"\b[a-z+]+://[\w.-]+:(?!password@)[^@\s/$<{*]{6,}@[\w.-]+"),
}
# Files whose fake credentials exist to prove something (the scanner here, URL redaction there); none is real.
# test_feedback.py: a fake password the redaction test hides; off_topic_test.yaml: a prompt injection that ends in
# 'root password:"', which the next entry's quote completes (no credential; the reported set is kept as written).
ALLOWED = {"tests/deploy/test_no_secrets.py", "tests/unit/serving/test_feedback.py", "model/mlops/data/eval_sets/off_topic_test.yaml"}


def find_credentials(text: str) -> list[str]:
    return [name for name, pattern in PATTERNS.items() if pattern.search(text)]


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    return [ROOT / n for n in names if n and n not in ALLOWED]


def test_no_tracked_file_holds_a_credential():
    files = tracked_files()
    assert len(files) > 50
    found = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        if hits := find_credentials(text):
            found[str(path.relative_to(ROOT))] = hits
    assert found == {}


@pytest.mark.parametrize(("text", "kind"), [
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "private key"),
    ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AWS access key"),
    ("token: ghp_" + "a1B2" * 9, "GitHub token"),
    ("export OS_APPLICATION_CREDENTIAL_SECRET=Zq8xR2mK9pL4vN7wT1yB", "OpenStack application credential secret"),
    ('db_password: "hunter2hunter2"', "literal password"),
    ("DATABASE_URL=postgresql://qa:s3cretpass@db.example.org/qa", "credentials in a URL"),
])
def test_the_scanner_catches_credentials(text: str, kind: str):
    assert kind in find_credentials(text)


@pytest.mark.parametrize("text", [
    "password: {{ argocd_secrets.postgres.password }}",
    'pulumi config set --secret transformers-qa:db_password "$(openssl rand -base64 24)"',
    "postgresql://qa@127.0.0.1:5432/postgres",
    "use postgresql://user:password@host:5432/db",
    "valueFrom: {secretKeyRef: {name: postgres, key: url}}",
    'MC_HOST_store: "http://$(ACCESS_KEY):$(SECRET_KEY)@minio:9000"',
])
def test_references_and_placeholders_are_not_credentials(text: str):
    assert find_credentials(text) == []
