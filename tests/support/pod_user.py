"""Processes that run as an image's non-root user, as its pods do (runAsUser/runAsGroup/fsGroup 1000).

This machine's interpreter may live where another user cannot run it (pyenv under /root, mode 0700). The pod
user then gets a virtualenv made from a Python of the same minor version that it can run (Debian's
/usr/bin/python3.X), reading this checkout's site-packages: the same packages, at another uid.
"""

from __future__ import annotations

import os
import shutil
import site
import stat
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

POD_UID = 1000


@dataclass(frozen=True)
class PodUser:
    uid: int
    gid: int
    python: Path  # an interpreter this user can run, with this checkout's packages
    bin: Path     # its scripts folder: `mlops` among them

    @property
    def mlops(self) -> Path:
        return self.bin / "mlops"

    def own(self, path: Path) -> None:
        """What Argo's executor writes in the pod (artifacts, clones) belongs to the pod's user."""
        for folder, _, files in os.walk(path):
            os.chown(folder, self.uid, self.gid)
            for name in files:
                os.chown(Path(folder) / name, self.uid, self.gid, follow_symlinks=False)

    def run_kwargs(self) -> dict:
        return {"user": self.uid, "group": self.gid, "extra_groups": [self.gid]}


def can_traverse(path: Path) -> None:
    """Let other users reach ``path`` (pytest's temporary folders are 0700): add o+x to it and the folders above."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def share_remote(remote: Path) -> dict[str, str]:
    """A bare git remote the pod user can push to; returns the git environment the pod needs for it: git refuses a
    repository another user owns (GitHub over ssh, which this remote stands for, checks no file ownership), and
    local transport drops GIT_CONFIG_* variables, so the exception is a global config file beside the remote."""
    subprocess.run(["git", "-C", str(remote), "config", "core.sharedRepository", "0666"], check=True)
    for folder, _, files in os.walk(remote):
        os.chmod(folder, 0o777)
        for name in files:
            os.chmod(Path(folder) / name, 0o666)
    config = remote.with_name(f"{remote.name}.pod-gitconfig")
    config.write_text(f"[safe]\n\tdirectory = {remote}\n")
    config.chmod(0o644)
    return {"GIT_CONFIG_GLOBAL": str(config)}


def _runs_as(uid: int, python: str, code: str = "0") -> bool:
    try:
        return subprocess.run([python, "-c", code], user=uid, group=uid, capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def make_pod_user(folder: Path, uid: int = POD_UID) -> PodUser | None:
    """The pod user, with an interpreter it can run made under ``folder``; None (with a warning saying why) where this
    machine cannot switch users or has no such interpreter: the caller then runs as itself."""
    if os.geteuid() != 0:
        warnings.warn(f"running the pods as this user ({os.geteuid()}), not uid {uid}: switching users needs root", stacklevel=2)
        return None
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys._base_executable), f"/usr/bin/python{version}"]
    python = next((c for c in candidates if os.path.isfile(c) and _runs_as(uid, c)), None)
    if python is None:
        warnings.warn(f"running the pods as this user, not uid {uid}: uid {uid} can run none of {candidates} "
                      f"(`make system-deps` installs Debian's python{version})", stacklevel=2)
        return None
    venv = folder / "pod-python"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    packages = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    # addsitedir also runs the .pth files there (the editable install of model/ is one).
    lines = [f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()]
    Path(packages, "checkout.pth").write_text("\n".join(lines) + "\n")
    script = Path(sys.executable).with_name("mlops").read_text().split("\n", 1)[1]
    (venv / "bin" / "mlops").write_text(f"#!{venv / 'bin' / 'python'}\n{script}")
    (venv / "bin" / "mlops").chmod(0o755)
    can_traverse(venv)
    if not _runs_as(uid, str(venv / "bin" / "python"), "import mlops.cli"):
        shutil.rmtree(venv)
        warnings.warn(f"running the pods as this user, not uid {uid}: the pod interpreter {venv} does not start", stacklevel=2)
        return None
    return PodUser(uid, uid, venv / "bin" / "python", venv / "bin")
