"""The git command line, for promotions: commits, reverts, pushes. Failures become one-line MlopsErrors."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mlops.core.errors import MlopsError


def _reason(done: subprocess.CompletedProcess) -> str:
    """Git's own reason: its first fatal/error line (advice and the transport's closing lines follow it)."""
    lines = [line.strip() for line in (done.stderr.strip() or done.stdout.strip()).splitlines() if line.strip()]
    return next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1] if lines else f"exit {done.returncode}")


class GitRepo:
    def __init__(self, path: Path) -> None:
        try:
            top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True, check=True)
        except (subprocess.CalledProcessError, FileNotFoundError, NotADirectoryError):
            raise MlopsError(f"{path} is not inside a git repository: run this from a clone of the deployment repository") from None
        self.root = Path(top.stdout.strip())

    def run(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True)
        if done.returncode != 0:
            raise MlopsError(f"git {args[0]} failed: {_reason(done)}")
        return done.stdout

    def require_clean(self) -> None:
        changes = self.run("status", "--porcelain").splitlines()
        if changes:
            raise MlopsError(f"the working tree has uncommitted changes ({changes[0].strip()}"
                             f"{f' and {len(changes) - 1} more' if len(changes) > 1 else ''}); commit or stash them first")

    def has_remote(self) -> bool:
        return bool(self.run("remote").split())

    def _succeeds(self, *args: str) -> bool:
        return subprocess.run(["git", *args], cwd=self.root, capture_output=True).returncode == 0

    def has_commit(self, sha: str) -> bool:
        return self._succeeds("cat-file", "-e", f"{sha}^{{commit}}")

    def is_ancestor(self, commit: str, revision: str) -> bool:
        """Whether ``revision`` contains ``commit`` (both in this clone)."""
        return self._succeeds("merge-base", "--is-ancestor", commit, revision)

    def head(self) -> str:
        return self.run("rev-parse", "HEAD").strip()

    def push(self) -> None:
        """Push the current branch; if someone pushed first (another environment's promotion), rebase once and retry."""
        if not self.has_remote():
            return
        branch = self.run("rev-parse", "--abbrev-ref", "HEAD").strip()
        try:
            self.run("push", "origin", branch)
        except MlopsError:
            self.run("pull", "--rebase", "origin", branch)
            self.run("push", "origin", branch)
