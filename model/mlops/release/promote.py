"""Promotion and rollback are git commits: `mlops promote` changes one environment's promotion files
(model version, image tags) and commits them; `mlops rollback` reverts that environment's newest
promotion (never a reset or a force-push). The MLflow alias named after the environment follows
what git says it runs, and is removed when git says it runs nothing yet (a rolled-back first promotion).
"""

from __future__ import annotations

import re
from pathlib import Path

from mlflow.exceptions import MlflowException

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.lifecycle import registry, tracking
from mlops.release.git import GitRepo
from mlops.release.layout import promotion_files, read_image_tag, read_model_version, write_image_tag, write_model_version

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


def _shown(value: str) -> str:
    return value or "none"


def _follow_git(client, name: str, env: str, version: str) -> None:
    """Point the alias ``env`` at ``version``; no version: no alias."""
    if version:
        client.set_registered_model_alias(name, env, version)
        return
    try:
        client.delete_registered_model_alias(name, env)
    except MlflowException:
        pass  # the environment has no alias to remove


def promote(settings: Settings, env: str, version: str | None = None, from_env: str | None = None, *,
            repo_path: Path, image_tag: str | None = None, move_alias: bool = True, skip_ci: bool = False,
            note: str | None = None, echo=print) -> str:
    """One commit that sets ``env``'s model version (given, or the one ``from_env`` runs) and, with
    ``image_tag`` or ``from_env``, its image tags; returns the commit's sha."""
    if (version is None) == (from_env is None):
        raise MlopsError("give exactly one of --version N or --from ENV")
    if from_env is not None and image_tag is not None:
        raise MlopsError("--from copies the image tags too; drop --image-tag")
    repo = GitRepo(repo_path)
    repo.require_clean()
    if from_env is not None:
        version, image_tag = read_model_version(repo.root, from_env), read_image_tag(repo.root, from_env)
        if not version or not image_tag:
            raise MlopsError(f"{from_env} runs nothing promoted yet (gitops/envs/{from_env}/values/); promote {from_env} first")
    version = str(version)
    current, current_tag = read_model_version(repo.root, env), read_image_tag(repo.root, env)
    image_tag = image_tag or current_tag
    if not image_tag:
        raise MlopsError(f"{env} runs no images yet (gitops/envs/{env}/values/images.yaml): its first promotion sets them; "
                         "pass --image-tag RELEASE_TAG (or --from an environment that runs a release)")
    client, found = _checked_version(settings, version)
    if (current, current_tag) == (version, image_tag):
        raise MlopsError(f"{env} already runs version {version} (images {image_tag}); nothing to promote")
    changed = [write_model_version(repo.root, env, version), write_image_tag(repo.root, env, image_tag)]
    metrics = ", ".join(f"{k}={v}" for k, v in sorted(found.tags.items()) if k.startswith(("test_", "natural_")))
    message = (f"{PROMOTION.format(env=env)}{settings.model_name} version {version} (was {_shown(current)})\n\n"
               f"images: {image_tag} (was {_shown(current_tag)})\nrun: {found.run_id}\n"
               f"dataset: {found.tags.get('dataset_hash', 'unknown')}\nmetrics: {metrics or 'none recorded'}\n"
               + (f"{note}\n" if note else "") + ("[skip ci]\n" if skip_ci else ""))
    repo.run("add", *(str(path.relative_to(repo.root)) for path in changed))
    repo.run("commit", "--quiet", "-m", message)
    repo.push()
    if move_alias:
        client.set_registered_model_alias(settings.model_name, env, version)
    echo(f"{env}: {_shown(current)} -> {version}, images {_shown(current_tag)} -> {image_tag} (commit {repo.head()[:12]}); "
         "ArgoCD syncs it")
    return repo.head()


def sync_alias(settings: Settings, env: str, *, repo_path: Path, echo=print) -> str:
    """Point the MLflow alias ``env`` at the version git says ``env`` runs (after a promotion PR merges)."""
    repo = GitRepo(repo_path)
    version = read_model_version(repo.root, env)
    client = _checked_version(settings, version)[0] if version else tracking.configure(settings)
    _follow_git(client, settings.model_name, env, version)
    echo(f"MLflow alias {env!r} -> version {_shown(version)} (as gitops/envs/{env}/ says)")
    return version


def _newest_unreverted_promotion(repo: GitRepo, env: str) -> tuple[str, str] | None:
    files = [str(path.relative_to(repo.root)) for path in promotion_files(repo.root, env)]
    log = repo.run("log", "--format=%H%x1f%s%x1f%b%x1e", "--", *files)
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
    _follow_git(tracking.configure(settings), settings.model_name, env, after)
    echo(f"{env}: {_shown(before)} -> {_shown(after)}, reverting {sha[:12]} ({subject}); ArgoCD syncs it")
    return repo.head()
