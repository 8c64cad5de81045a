"""Promotion and rollback with real git: a bare remote, clones, commits, reverts, pushes, and the rendered result."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.lifecycle import registry, tracking
from mlops.release.layout import ENVIRONMENTS, read_image_tag, read_model_version
from mlops.release.promote import promote, rollback, sync_alias
from support.gitops import render_all as render
from support.services import clone, git, gitops_remote

NAME = "transformers-qa"


RELEASED = {env: ("1", "v1.0.0") for env in ENVIRONMENTS}  # every environment runs version 1 on release v1.0.0


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return gitops_remote(tmp_path, RELEASED)


@pytest.fixture
def settings(mlops_home: Path) -> Settings:
    """A registry with versions 1-3 that passed the gate and version 4 that failed it."""
    settings = Settings.from_env()
    client = tracking.configure(settings)
    client.create_registered_model(NAME)
    for number in range(1, 5):
        run = client.create_run(client.create_experiment(f"e{number}"))
        client.set_tag(run.info.run_id, tracking.TAG_GATE, "passed" if number < 4 else "failed")
        client.create_model_version(NAME, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                    tags={"dataset_hash": "abc", "test_mrr": f"0.9{number}"})
    return settings


def alias(settings: Settings, env: str) -> str:
    return str(registry.by_alias(tracking.configure(settings), NAME, env).version)


def test_promote_then_rollback_restores_the_exact_render(remote: Path, tmp_path: Path, settings: Settings):
    work = clone(remote, tmp_path / "work")
    before = render(work, "staging")

    promote(settings, "staging", "2", repo_path=work, echo=lambda *_: None)
    assert read_model_version(work, "staging") == "2" and alias(settings, "staging") == "2"
    changed = git(work, "show", "--name-only", "--format=%s%n%b", "HEAD")
    assert changed.startswith("promote(staging): transformers-qa version 2 (was 1)")
    assert "test_mrr=0.92" in changed and changed.strip().endswith("gitops/envs/staging/values/model.yaml")
    promoted = render(work, "staging")
    assert promoted != before and 'transformers-qa/model-version: "2"' in promoted

    rollback(settings, "staging", repo_path=work, echo=lambda *_: None)
    assert render(work, "staging") == before
    assert alias(settings, "staging") == "1"
    assert git(work, "log", "-1", "--format=%s").startswith('Revert "promote(staging)')
    assert git(remote, "rev-parse", "main") == git(work, "rev-parse", "HEAD")  # pushed, not force-pushed
    assert int(git(work, "rev-list", "--count", "HEAD")) == 3  # seed, promotion, revert: history kept


def test_two_promotions_then_rollbacks_walk_back_one_at_a_time(remote: Path, tmp_path: Path, settings: Settings):
    work = clone(remote, tmp_path / "work")
    original = render(work, "prod")
    promote(settings, "prod", "2", repo_path=work, echo=lambda *_: None)
    first = render(work, "prod")
    promote(settings, "prod", "3", repo_path=work, echo=lambda *_: None)

    rollback(settings, "prod", repo_path=work, echo=lambda *_: None)
    assert render(work, "prod") == first and alias(settings, "prod") == "2"
    rollback(settings, "prod", repo_path=work, echo=lambda *_: None)
    assert render(work, "prod") == original and alias(settings, "prod") == "1"
    with pytest.raises(MlopsError, match="nothing to roll back in prod"):
        rollback(settings, "prod", repo_path=work, echo=lambda *_: None)


def test_concurrent_promotions_to_different_environments_both_land(remote: Path, tmp_path: Path, settings: Settings):
    first, second = clone(remote, tmp_path / "a"), clone(remote, tmp_path / "b")
    promote(settings, "staging", "3", repo_path=first, echo=lambda *_: None)
    promote(settings, "prod", "2", repo_path=second, echo=lambda *_: None)  # behind the remote: rebases, then pushes
    final = clone(remote, tmp_path / "final")
    assert (read_model_version(final, "staging"), read_model_version(final, "prod")) == ("3", "2")
    subjects = git(final, "log", "--format=%s").splitlines()
    assert subjects[:2] == ["promote(prod): transformers-qa version 2 (was 1)", "promote(staging): transformers-qa version 3 (was 1)"]


def test_promote_from_another_environment_copies_version_and_images(remote: Path, tmp_path: Path, settings: Settings):
    work = clone(remote, tmp_path / "work")
    promote(settings, "staging", "3", repo_path=work, image_tag="v1.4.0", echo=lambda *_: None)
    promote(settings, "prod", from_env="staging", repo_path=work, echo=lambda *_: None)
    assert (read_model_version(work, "prod"), read_image_tag(work, "prod")) == ("3", "v1.4.0")
    assert "image: ghcr.io/transformers-qa/api:v1.4.0" in render(work, "prod")


def test_a_release_promotion_sets_images_and_model_and_reverts_as_one(remote: Path, tmp_path: Path, settings: Settings):
    """What the Argo workflow runs: version + release image tag, [skip ci], a note naming the run."""
    work = clone(remote, tmp_path / "work")
    before = render(work, "staging")
    sha = promote(settings, "staging", "2", repo_path=work, image_tag="v2.0.0", skip_ci=True,
                  note="argo workflow release-abc12", echo=lambda *_: None)
    assert sha == git(work, "rev-parse", "HEAD").strip()
    message = git(work, "log", "-1", "--format=%B")
    assert message.splitlines()[0] == "promote(staging): transformers-qa version 2 (was 1)"
    for line in ("images: v2.0.0 (was v1.0.0)", "argo workflow release-abc12", "[skip ci]", "metrics: test_mrr=0.92"):
        assert line in message.splitlines()
    changed = git(work, "show", "--name-only", "--format=", "HEAD").split()
    assert changed == ["gitops/envs/staging/values/images.yaml", "gitops/envs/staging/values/model.yaml"]
    rollback(settings, "staging", repo_path=work, echo=lambda *_: None)
    assert render(work, "staging") == before


def test_a_pull_request_promotion_leaves_the_alias_until_merge(remote: Path, tmp_path: Path, settings: Settings):
    work = clone(remote, tmp_path / "work")
    promote(settings, "prod", "3", repo_path=work, move_alias=False, echo=lambda *_: None)
    assert registry.by_alias(tracking.configure(settings), NAME, "prod") is None
    assert sync_alias(settings, "prod", repo_path=work, echo=lambda *_: None) == "3"
    assert alias(settings, "prod") == "3"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"version": "9"}, "has no version '9'; known versions: 1, 2, 3, 4"),
    ({"version": "4"}, "version 4 of 'transformers-qa' did not pass its quality gate"),
    ({"version": "1"}, r"staging already runs version 1 \(images v1.0.0\); nothing to promote"),
    ({"from_env": "prod", "image_tag": "v2.0.0"}, "--from copies the image tags too; drop --image-tag"),
    ({}, "give exactly one of --version N or --from ENV"),
    ({"version": "2", "from_env": "dev"}, "give exactly one of --version N or --from ENV"),
])
def test_promotions_that_are_refused_change_nothing(remote: Path, tmp_path: Path, settings: Settings, kwargs: dict, message: str):
    work = clone(remote, tmp_path / "work")
    head = git(work, "rev-parse", "HEAD")
    with pytest.raises(MlopsError, match=message):
        promote(settings, "staging", repo_path=work, echo=lambda *_: None, **kwargs)
    assert git(work, "rev-parse", "HEAD") == head and git(work, "status", "--porcelain") == ""


def test_dirty_tree_and_unknown_environment_are_refused(remote: Path, tmp_path: Path, settings: Settings):
    work = clone(remote, tmp_path / "work")
    with pytest.raises(MlopsError, match="unknown environment 'qa'"):
        promote(settings, "qa", "2", repo_path=work, echo=lambda *_: None)
    (work / "gitops" / "envs" / "dev" / "values" / "service.yaml").write_text("edited: true\n")
    with pytest.raises(MlopsError, match=r"uncommitted changes \(M gitops/envs/dev/values/service.yaml\); commit or stash"):
        promote(settings, "dev", "2", repo_path=work, echo=lambda *_: None)
    with pytest.raises(MlopsError, match="uncommitted changes"):
        rollback(settings, "dev", repo_path=work, echo=lambda *_: None)
    with pytest.raises(MlopsError, match="is not inside a git repository"):
        promote(settings, "dev", "2", repo_path=tmp_path, echo=lambda *_: None)


def test_a_retraining_promotion_changes_only_the_model(remote: Path, tmp_path: Path, settings: Settings):
    """The Argo workflow without an image tag (CronWorkflow, event binding) passes --image-tag "": the images stay."""
    work = clone(remote, tmp_path / "work")
    promote(settings, "staging", "2", repo_path=work, image_tag="v2.0.0", echo=lambda *_: None)
    promote(settings, "staging", "3", repo_path=work, image_tag="", skip_ci=True, echo=lambda *_: None)
    assert git(work, "show", "--name-only", "--format=", "HEAD").split() == ["gitops/envs/staging/values/model.yaml"]
    assert (read_model_version(work, "staging"), read_image_tag(work, "staging")) == ("3", "v2.0.0")


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """Nothing promoted anywhere yet: model.version "" and every image tag "" (the repository's initial state)."""
    return clone(gitops_remote(tmp_path, {env: ("", "") for env in ENVIRONMENTS}), tmp_path / "fresh")


def test_the_first_promotion_sets_model_and_images_and_reverts_to_nothing(fresh: Path, settings: Settings):
    assert (read_model_version(fresh, "staging"), read_image_tag(fresh, "staging")) == ("", "")
    head = git(fresh, "rev-parse", "HEAD")
    with pytest.raises(MlopsError, match=r"staging runs no images yet \(gitops/envs/staging/values/images.yaml\): its first promotion "
                                         r"sets them; pass --image-tag RELEASE_TAG"):
        promote(settings, "staging", "2", repo_path=fresh, echo=lambda *_: None)
    assert git(fresh, "rev-parse", "HEAD") == head and git(fresh, "status", "--porcelain") == ""

    lines: list[str] = []
    promote(settings, "staging", "2", repo_path=fresh, image_tag="v1.2.0", echo=lines.append)
    assert (read_model_version(fresh, "staging"), read_image_tag(fresh, "staging")) == ("2", "v1.2.0")
    message = git(fresh, "log", "-1", "--format=%B")
    assert message.startswith("promote(staging): transformers-qa version 2 (was none)") and "images: v1.2.0 (was none)" in message
    assert lines == [f"staging: none -> 2, images none -> v1.2.0 (commit {git(fresh, 'rev-parse', 'HEAD')[:12]}); ArgoCD syncs it"]
    assert alias(settings, "staging") == "2"

    rollback(settings, "staging", repo_path=fresh, echo=lines.append)
    assert (read_model_version(fresh, "staging"), read_image_tag(fresh, "staging")) == ("", "")
    assert registry.by_alias(tracking.configure(settings), NAME, "staging") is None  # git says staging runs nothing
    assert lines[-1].startswith("staging: 2 -> none, reverting")


def test_nothing_to_copy_from_an_environment_that_runs_nothing(fresh: Path, settings: Settings):
    with pytest.raises(MlopsError, match=r"staging runs nothing promoted yet \(gitops/envs/staging/values/\); promote staging first"):
        promote(settings, "prod", from_env="staging", repo_path=fresh, echo=lambda *_: None)


def test_the_alias_of_an_environment_that_runs_nothing_is_removed(fresh: Path, settings: Settings):
    client = tracking.configure(settings)
    client.set_registered_model_alias(NAME, "prod", "3")
    assert sync_alias(settings, "prod", repo_path=fresh, echo=lambda *_: None) == ""
    assert registry.by_alias(client, NAME, "prod") is None


def test_half_promoted_images_are_refused(fresh: Path):
    images = fresh / "gitops/envs/dev/values/images.yaml"
    images.write_text('images:\n  triton:\n    tag: ""\n  api:\n    tag: "v1.2.0"\n')
    with pytest.raises(MlopsError, match=r"pins different tags \('', 'v1.2.0'\); make them one release tag"):
        read_image_tag(fresh, "dev")
