"""Dockerfiles (built in CI, not here: no Docker engine): hadolint-clean, pinned bases, non-root, nothing secret in
context; what each assumes about its base (images/base-images.yaml) checked by replaying its file-system steps."""

from __future__ import annotations

import importlib.metadata
import posixpath
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging import tags
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from mlops.release.layout import ENVIRONMENTS
from support import dockerfiles
from support.gitops import promoted_service
from support.paths import ROOT

DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))
HADOLINT = str(Path(sys.executable).with_name("hadolint"))


def test_each_image_has_a_dockerfile():
    assert {p.parent.name for p in DOCKERFILES} == {"api", "trainer", "triton"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_is_clean(dockerfile: Path):
    result = subprocess.run([HADOLINT, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_pinned_base_non_root_user_and_a_leading_comment(dockerfile: Path):
    text = dockerfile.read_text()
    assert text.startswith("# ")
    for image in re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE):
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest", f"{image} is not pinned"
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must end as a non-root user"
    assert not re.search(r"(?i)(password|secret|token)\s*=", text)


def test_build_context_leaves_out_local_state_and_secrets():
    rules = (ROOT / ".dockerignore").read_text().splitlines()
    effective = [r for r in rules if r and not r.startswith("#")]
    assert effective[0] == "*", "deny everything, then allow what images need"
    allowed = {r[1:] for r in effective if r.startswith("!")}
    assert allowed >= {"model/", "images/*/requirements.lock", "pyproject.toml"}
    assert not any(a.startswith((".mlops", ".venv", ".git", "gitops", "infra")) for a in allowed)


@pytest.mark.parametrize("name", ("api", "trainer", "triton"))
def test_each_image_installs_its_own_lock_and_no_infra(name: str):
    """images/<name>/requirements.lock is its extra's lock (make lock; tests/unit/test_dependencies.py checks it):
    no image takes the dev set, and the Pulumi program (infra/) is in none of them."""
    copied = dockerfiles.copied(ROOT / "images" / name / "Dockerfile")
    assert f"images/{name}/requirements.lock" in copied and "requirements.lock" not in copied
    assert not any(s == "infra" or s.startswith("infra/") for s in copied)


# -- what the Dockerfiles assume about their bases (images/base-images.yaml), replayed for real -----------
IMAGES = ("api", "trainer", "triton")
OUR_IMAGES = "ghcr.io/transformers-qa/"


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory):
    """images/<name>/Dockerfile's users, folders and copies made over its base's facts, once per module."""
    done: dict[str, tuple[dockerfiles.Image, dockerfiles.Replay]] = {}

    def get(name: str) -> tuple[dockerfiles.Image, dockerfiles.Replay]:
        if name not in done:
            try:
                done[name] = dockerfiles.replay_image(name, tmp_path_factory.mktemp(name) / "root")
            except dockerfiles.CannotReplay as e:
                pytest.skip(str(e))
        return done[name]
    return get


def test_every_base_image_has_its_facts_with_sources():
    for dockerfile in DOCKERFILES:
        facts = dockerfiles.base_facts(dockerfiles.load(dockerfile).base)
        assert facts["exists"] and facts["os"]["source"] and facts["python"]["source"]
        sourced = [facts[k] for k in ("env", "entrypoint", "cmd", "library_dirs", "libraries") if k in facts]
        sourced = [*facts.get("users", []), *facts.get("files", []), *facts.get("dockerfile_installs", []),
                   *[f for f in sourced if "value" in f], *facts.get("env", {}).values()]
        assert all(f.get("source") for f in sourced), f"{dockerfile}: a fact without its source"


@pytest.mark.parametrize("name", IMAGES)
def test_the_dockerfile_makes_its_user_on_the_base_and_runs_as_it(name: str, replays):
    image, replay = replays(name)  # a useradd the base refuses (a uid it already has) fails here, with useradd's words
    user, group = image.uid_gid
    entry = dockerfiles.passwd_entry(replay.root, user)
    assert entry, f"USER {image.user} is no account of the image"
    assert entry[2] != "0" and group in ("", entry[3])


TRAINER = f"{OUR_IMAGES}trainer:"


def _trainer_templates():
    """(file, workflow spec, template, container) for every template that runs the trainer image."""
    for path in sorted((ROOT / "workflows").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            spec = (doc or {}).get("spec", {})
            spec = spec.get("workflowSpec", spec)
            for template in spec.get("templates", []):
                c = template.get("container") or template.get("script")
                if c and c["image"].startswith(TRAINER):
                    yield path.name, spec, template, c


def _pod_security(pod: dict, container: dict) -> dict:
    return {**pod.get("securityContext", {}), **container.get("securityContext", {})}


def test_pods_run_as_the_uid_and_gid_their_image_is_made_for():
    for env in ENVIRONMENTS:
        for manifest in promoted_service(env):
            if manifest["kind"] != "Deployment":
                continue
            pod = manifest["spec"]["template"]["spec"]
            for c in pod["containers"] + pod.get("initContainers", []):
                if c["image"].startswith(OUR_IMAGES):
                    image = dockerfiles.load(ROOT / "images" / c["image"][len(OUR_IMAGES):].split(":")[0] / "Dockerfile")
                    security = _pod_security(pod, c)
                    assert (str(security["runAsUser"]), str(security["runAsGroup"])) == image.uid_gid, (env, c["name"])
    for _, spec, template, c in _trainer_templates():
        image = dockerfiles.load(ROOT / "images" / "trainer" / "Dockerfile")
        security = _pod_security(spec, c)
        assert (str(security["runAsUser"]), str(security["runAsGroup"])) == image.uid_gid, template["name"]


# -- the trainer's folders under Argo ------------------------------------------------------------------------
def _config_maps() -> dict[str, dict]:
    docs = yaml.safe_load_all((ROOT / "workflows" / "pipeline-config.yaml").read_text(encoding="utf-8"))
    return {d["metadata"]["name"]: d.get("data", {}) for d in docs if d and d["kind"] == "ConfigMap"}


def _container_env(image: dockerfiles.Image, c: dict) -> dict[str, str]:
    """The environment the step's process gets: the image's, then envFrom ConfigMaps, then env."""
    env = dict(image.env)
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_config_maps()[source["configMapRef"]["name"]])
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    return env


def _folder(replay: dockerfiles.Replay, path: str, mounts: list[str]) -> tuple[int, int, int] | str | None:
    """A folder as the container sees it: a volume, the image's (owner, group, mode), one the container runtime
    makes as root (0755) on the way to a mount below it, or None when it does not exist."""
    if path in mounts:
        return "volume"
    host = replay.host(path)
    if host.is_dir():
        st = host.stat()
        return st.st_uid, st.st_gid, st.st_mode
    if any(m.startswith(path.rstrip("/") + "/") for m in mounts):
        return 0, 0, 0o40755
    return None


def _cannot_write(replay: dockerfiles.Replay, path: str, mounts: list[str], uid: int, gids: set[int]) -> str | None:
    """Why a process with uid/gids cannot create files in `path` (making it first if missing); None if it can."""
    folder = path
    while (info := _folder(replay, folder, mounts)) is None:
        folder = posixpath.dirname(folder)
    if info == "volume":
        return None  # the volume's own permissions (fsGroup), not the image's
    owner, group, mode = info
    if (owner == uid and mode & 0o300 == 0o300) or (group in gids and mode & 0o030 == 0o030) or mode & 0o003 == 0o003:
        return None
    return f"{folder} is {owner}:{group} {oct(mode & 0o777)}"


def test_trainer_steps_can_write_where_the_workflow_makes_them_write(replays):
    """Input artifacts are mounted (subPath) at their path; the runtime makes missing folders above a mount as
    root. Every step writes MLOPS_HOME; a step also writes its output artifacts and its workingDir."""
    image, replay = replays("trainer")
    checked = 0
    for file, spec, template, c in _trainer_templates():
        security = _pod_security(spec, c)
        uid, gids = security["runAsUser"], {security["runAsGroup"], security.get("fsGroup", security["runAsGroup"])}
        mounts = [a["path"] for a in template.get("inputs", {}).get("artifacts", [])]
        mounts += [m["mountPath"] for m in c.get("volumeMounts", [])]
        writes = [_container_env(image, c)["MLOPS_HOME"]]
        writes += [posixpath.dirname(a["path"]) for a in template.get("outputs", {}).get("artifacts", [])]
        writes += [c.get("workingDir", image.workdir)]
        problems = {p: why for p in writes if (why := _cannot_write(replay, p, mounts, uid, gids))}
        assert not problems, f"{file} {template['name']} runs as {uid} and cannot write: {problems}"
        checked += 1
    assert checked >= 5


# -- Python, glibc and the lock --------------------------------------------------------------------------------
def _image_python(image: dockerfiles.Image, facts: dict) -> str:
    """The Python the image runs the lock on: the virtualenv's interpreter when the Dockerfile makes one."""
    for argv in (argv for run in image.runs for argv in run.commands):
        if argv[1:3] == ["-m", "venv"]:
            return argv[0].removeprefix("python")
    return ".".join(facts["python"]["version"].split(".")[:2])


def _supported_tags(python: str, glibc: str) -> set[tags.Tag]:
    major, minor = (int(x) for x in python.split("."))
    glibc_minor = int(glibc.split(".")[1])
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms = [f"manylinux_2_{m}_x86_64" for m in range(glibc_minor, 4, -1)]
    platforms += [f"{legacy[m]}_x86_64" for m in legacy if m <= glibc_minor]
    return {*tags.cpython_tags((major, minor), platforms=platforms), *tags.compatible_tags((major, minor), platforms=platforms)}


# Wheels whose WHEEL metadata names a bare platform although the file PyPI serves, which pip and uv choose by,
# carries a manylinux tag: Ray renames its wheels after building them. Source: PyPI's files of ray 2.60.0
# (pip download ray==2.60.0 --no-deps: ray-2.60.0-cp311-cp311-manylinux2014_x86_64.whl, whose WHEEL says
# "Tag: cp311-cp311-linux_x86_64"). No source archive of ray is published, so none can be built here.
PUBLISHED_TAGS = {"ray": "cp311-cp311-manylinux2014_x86_64"}


@pytest.mark.parametrize("name", IMAGES)
def test_the_lock_installs_on_the_images_python_and_glibc(name: str):
    """The image's lock is resolved for its platform (make lock) and tested on this venv's Python, which has the dev
    set; every wheel installed from it must also fit the image's Python and C library (a wheel built here from a
    source archive would need a compiler there). The CUDA runtime wheels only the GPU images take (no pin of the dev
    set) are not installed here: uv picked them for the image's platform."""
    image = dockerfiles.load(ROOT / "images" / name / "Dockerfile")
    facts = dockerfiles.base_facts(image.base)
    python = _image_python(image, facts)
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert SpecifierSet(project["requires-python"]).contains(f"{python}.0")
    if image.base.startswith("python:"):
        assert image.base.split(":")[1].startswith(facts["python"]["version"] + "-")
    supported = _supported_tags(python, facts["os"]["glibc"])
    unfit = {}
    dev = dockerfiles.lock_pins(ROOT / "requirements.lock")
    for dist_name, version in dockerfiles.lock_pins(ROOT / "images" / name / "requirements.lock").items():
        if dist_name not in dev:
            continue
        dist = importlib.metadata.distribution(dist_name)
        # The public version: this machine's torch is the CPU build (2.13.0+cpu) of the lock's 2.13.0.
        assert Version(dist.version).public == version, f"{dist_name} {dist.version} is installed, the lock says {version}: run make setup"
        wheel_tags = {t for line in (dist.read_text("WHEEL") or "").splitlines() if line.startswith("Tag:")
                      for t in tags.parse_tag(line.split(":", 1)[1].strip())}
        if dist_name in PUBLISHED_TAGS:
            wheel_tags = set(tags.parse_tag(PUBLISHED_TAGS[dist_name]))
        if not wheel_tags & supported:
            unfit[dist_name] = sorted(map(str, wheel_tags))
    assert not unfit, f"wheels that do not install on {image.base} (Python {python}, glibc {facts['os']['glibc']}): {unfit}"


# -- pinned versions exist -------------------------------------------------------------------------------------
def _apt_pins(image: dockerfiles.Image) -> list[tuple[str, str]]:
    return [tuple(word.split("=", 1)) for run in image.runs for argv in run.commands
            if argv[:2] == ["apt-get", "install"] for word in argv[2:] if "=" in word and not word.startswith("-")]


def _host_release() -> str:
    text = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    match = re.search(r"^VERSION_CODENAME=(\w+)", text, flags=re.MULTILINE)
    return match.group(1) if match else ""


@pytest.mark.parametrize("name", IMAGES)
def test_apt_pins_exist_in_the_bases_archive(name: str):
    image = dockerfiles.load(ROOT / "images" / name / "Dockerfile")
    pins = _apt_pins(image)
    if not pins:
        return
    release = dockerfiles.base_facts(image.base)["os"]["release"]
    if f"({_host_release()})" not in release:
        pytest.skip(f"{release}'s archive is not this machine's apt source: {pins} not checked here")
    for package, version in pins:
        madison = subprocess.run(["apt-cache", "madison", package], capture_output=True, text=True, timeout=60).stdout
        if not madison.strip():
            pytest.skip("no apt lists here: run apt-get update")
        assert version in [line.split("|")[1].strip() for line in madison.splitlines()], f"{package}={version} is not in {release}"
