"""Promotion and rollback are git commits: `mlops promote` changes one environment's model version
file and commits it; `mlops rollback` reverts that environment's newest promotion (never a reset or a
force-push). The MLflow alias named after the environment follows what git says it runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlops import registry, tracking
from mlops.errors import MlopsError
from mlops.gitops.git import GitRepo
from mlops.gitops.layout import model_file, read_model_version, write_model_version
from mlops.settings import Settings

PROMOTION = "promote({env}): "
_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{40})")


def _checked_version(settings: Settings, version: str):
    client = tracking.configure(settings)
    found = registry.get_version(client, settings.model_name, version)  # unknown version: one clear error
    gate = tracking.get_run(client, found.run_id).data.tags.get(tracking.TAG_GATE)
    if gate != "passed":
        raise MlopsError(f"version {version} of {settings.model_name!r} did not pass its quality gate (gate: {gate or 'not run'}); "
                         "it cannot be promoted")
    return client, found


def promote(settings: Settings, env: str, version: str | None = None, from_env: str | None = None, *,
            repo_path: Path, echo=print) -> str:
    """One commit that sets ``env``'s model version (given, or the one ``from_env`` runs); returns its sha."""
    if (version is None) == (from_env is None):
        raise MlopsError("give exactly one of --version N or --from ENV")
    repo = GitRepo(repo_path)
    repo.require_clean()
    version = str(version) if version is not None else read_model_version(repo.root, from_env)
    client, found = _checked_version(settings, version)
    current = read_model_version(repo.root, env)
    if current == version:
        raise MlopsError(f"{env} already runs version {version}; nothing to promote")
    path = write_model_version(repo.root, env, version)
    metrics = ", ".join(f"{k}={v}" for k, v in sorted(found.tags.items()) if k.startswith(("test_", "natural_")))
    message = (f"{PROMOTION.format(env=env)}{settings.model_name} version {version} (was {current})\n\n"
               f"run: {found.run_id}\ndataset: {found.tags.get('dataset_hash', 'unknown')}\n"
               f"metrics: {metrics or 'none recorded'}\n")
    repo.run("add", str(path.relative_to(repo.root)))
    repo.run("commit", "--quiet", "-m", message)
    repo.push()
    client.set_registered_model_alias(settings.model_name, env, version)
    echo(f"{env}: {current} -> {version} (commit {repo.head()[:12]}); ArgoCD syncs it")
    return repo.head()


def _newest_unreverted_promotion(repo: GitRepo, env: str) -> tuple[str, str] | None:
    log = repo.run("log", "--format=%H%x1f%s%x1f%b%x1e", "--", str(model_file(repo.root, env).relative_to(repo.root)))
    reverted: set[str] = set()
    for record in filter(str.strip, log.split("\x1e")):  # newest first
        sha, subject, body = (record.strip().split("\x1f") + ["", ""])[:3]
        reverted.update(_REVERTS.findall(body))
        if subject.startswith(PROMOTION.format(env=env)) and sha not in reverted:
            return sha, subject
    return None


def rollback(settings: Settings, env: str, *, repo_path: Path, echo=print) -> str:
    """`git revert` of ``env``'s newest promotion that is not reverted yet; returns the revert's sha."""
    repo = GitRepo(repo_path)
    repo.require_clean()
    target = _newest_unreverted_promotion(repo, env)
    if target is None:
        raise MlopsError(f"nothing to roll back in {env}: no promotion commit that has not been reverted already")
    sha, subject = target
    before = read_model_version(repo.root, env)
    repo.run("revert", "--no-edit", sha)
    repo.push()
    after = read_model_version(repo.root, env)
    client = tracking.configure(settings)
    client.set_registered_model_alias(settings.model_name, env, after)
    echo(f"{env}: {before} -> {after}, reverting {sha[:12]} ({subject}); ArgoCD syncs it")
    return repo.head()
