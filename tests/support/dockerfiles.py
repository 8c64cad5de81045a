"""What Docker makes of our Dockerfiles, read with BuildKit's own parser (the `dockerfile` package wraps it).

`Image` follows the Dockerfile reference for the final stage: ARG/ENV substitution (`$X`, `${X}`,
`${X:-word}`, `${X:+word}`; an instruction sees the environment from before it), USER, WORKDIR, and
ENTRYPOINT/CMD (the shell form runs under SHELL; an ENTRYPOINT resets the CMD inherited from the base).

`replay` carries out, for real and as root, the RUN steps that only shape the file system (useradd and
groupadd with --prefix, install, mkdir, chown, chmod, cp, ln, patchelf) inside a temporary root laid out
from images/base-images.yaml. Steps that need the network (apt-get, pip, add-apt-repository) cannot run
here: `Replay.skipped` lists them, and the base facts lay out what the tests need from them.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import dockerfile
import yaml
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
BASE_FACTS = ROOT / "images" / "base-images.yaml"
# Debian's base-passwd master files: the system accounts of Debian and Ubuntu images (uids below 1000).
BASE_PASSWD = Path("/usr/share/base-passwd")

_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::([-+])([^}]*))?\}|(\w+))")


def substitute(text: str, env: dict[str, str]) -> str:
    """Docker's variable substitution: unset names become empty, `:-` gives a default, `:+` an alternative."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        value = env.get(name, "")
        if match.group(2) == "-":
            return value or match.group(3)
        if match.group(2) == "+":
            return match.group(3) if value else ""
        return value
    return _VARIABLE.sub(one, text)


def _shell_substitute(script: str, env: dict[str, str]) -> str:
    # The shell expands variables outside single quotes only.
    parts = re.split(r"('[^']*')", script)
    return "".join(p if p.startswith("'") else substitute(p, env) for p in parts)


@dataclass
class Run:
    user: str
    workdir: str
    commands: list[list[str]]  # the simple commands of `a && b; c`, variables expanded


@dataclass
class Image:
    dockerfile: Path
    base: str
    env: dict[str, str]  # the image's environment, base facts included
    user: str
    workdir: str
    entrypoint: list[str]
    cmd: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def uid_gid(self) -> tuple[str, str]:
        uid, _, gid = self.user.partition(":")
        return uid, gid


def base_facts(reference: str) -> dict:
    facts = yaml.safe_load(BASE_FACTS.read_text(encoding="utf-8"))
    if reference not in facts:
        raise KeyError(f"{BASE_FACTS.relative_to(ROOT)} says nothing about base image {reference}")
    return facts[reference]


def _split_commands(script: str) -> list[list[str]]:
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", ";"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def load(path: Path) -> Image:
    """The final stage of a Dockerfile as the image config Docker would build from it."""
    instructions = dockerfile.parse_file(str(path))
    starts = [i for i, c in enumerate(instructions) if c.cmd == "FROM"]
    stage = instructions[starts[-1]:]
    base = stage[0].value[0]
    facts = base_facts(base)
    env = {name: fact["value"] for name, fact in facts.get("env", {}).items()}
    args: dict[str, str] = {}
    user, workdir, shell = "root", "/", ["/bin/sh", "-c"]
    entrypoint: list[str] = list(facts.get("entrypoint", {}).get("value", []))
    cmd: list[str] | None = None  # None: still the base's
    runs: list[Run] = []
    for c in stage[1:]:
        scope = {**args, **env}
        if c.cmd == "ENV":
            pairs = c.value
            env.update({pairs[i]: substitute(pairs[i + 1], scope) for i in range(0, len(pairs), 2)})
        elif c.cmd == "ARG":
            for item in c.value:
                name, _, default = item.partition("=")
                args[name] = substitute(default, scope)
        elif c.cmd == "USER":
            user = substitute(c.value[0], scope)
        elif c.cmd == "WORKDIR":
            workdir = posixpath.join(workdir, substitute(c.value[0], scope))
        elif c.cmd == "SHELL":
            shell = list(c.value)
        elif c.cmd in ("ENTRYPOINT", "CMD"):
            argv = list(c.value) if c.json else [*shell, c.value[0]]
            if c.cmd == "ENTRYPOINT":
                entrypoint = argv
                cmd = [] if cmd is None else cmd
            else:
                cmd = argv
        elif c.cmd == "RUN":
            if c.json:
                raise ValueError(f"{path}:{c.start_line}: exec-form RUN is not modelled")
            runs.append(Run(user, workdir, _split_commands(_shell_substitute(c.value[0], scope))))
    if cmd is None:
        cmd = list(facts.get("cmd", {}).get("value", []))
    return Image(path, base, env, user, workdir, entrypoint, cmd, runs)


def copied(path: Path) -> set[str]:
    """The build-context paths a Dockerfile's COPY and ADD steps take (their sources, normalised)."""
    return {posixpath.normpath(source) for c in dockerfile.parse_file(str(path)) if c.cmd in ("COPY", "ADD")
            for source in c.value[:-1] if not source.startswith("--")}


def lay_out_base(facts: dict, root: Path) -> None:
    """The parts of the base image the Dockerfile relies on: accounts, files, libraries (empty stand-ins)."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    passwd = (BASE_PASSWD / "passwd.master").read_text()
    group = (BASE_PASSWD / "group.master").read_text()
    for u in facts.get("users", []):
        passwd += f"{u['name']}:x:{u['uid']}:{u['gid']}::{u['home']}:/bin/sh\n"
        group += f"{u['name']}:x:{u['gid']}:\n"
    (etc / "passwd").write_text(passwd)
    (etc / "group").write_text(group)
    (etc / "shadow").write_text("")
    (etc / "gshadow").write_text("")
    stand_ins = [f["path"] for f in facts.get("files", [])] + facts.get("libraries", {}).get("value", [])
    stand_ins += [i["path"] for i in facts.get("dockerfile_installs", [])]
    for path in stand_ins:
        host = root / path.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        host.touch()


@dataclass
class Replay:
    root: Path
    mounts: dict[str, Path]  # image path -> host folder that stands for it, read only
    skipped: list[list[str]] = field(default_factory=list)
    workdir: str = "/"

    def host(self, path: str) -> Path:
        path = posixpath.normpath(posixpath.join(self.workdir, path))
        for image_path, host in sorted(self.mounts.items(), key=lambda m: -len(m[0])):
            if path == image_path or path.startswith(image_path + "/"):
                return host / posixpath.relpath(path, image_path)
        return self.root / path.lstrip("/")

    def written(self, path: str) -> str:
        host = self.host(path)
        if not host.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"the Dockerfile writes {path}, which the replay maps outside its root ({host})")
        return str(host)


def _operands(argv: list[str], valued: frozenset[str]) -> list[int]:
    """Indexes of the operands of a command line; `valued` options take the next word."""
    found, i = [], 1
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return found + list(range(i + 1, len(argv)))
        if word.startswith("-") and word != "-":
            i += 2 if word in valued else 1
            continue
        found.append(i)
        i += 1
    return found


class FileCommand(NamedTuple):
    valued: frozenset[str]  # options that take the next word
    leading: int            # operands that are not paths (chown's owner, chmod's mode)
    writes: str             # "last" or "all" operands
    maps_reads: bool        # False for ln: its target is a path as the image will see it


_FILE_COMMANDS = {
    "cp": FileCommand(frozenset(), 0, "last", True),
    "install": FileCommand(frozenset({"-m", "--mode", "-o", "--owner", "-g", "--group"}), 0, "last", True),
    "mkdir": FileCommand(frozenset({"-m", "--mode"}), 0, "all", True),
    "chown": FileCommand(frozenset(), 1, "all", True),
    "chmod": FileCommand(frozenset(), 1, "all", True),
    "ln": FileCommand(frozenset(), 0, "last", False),
    # Option values (an RPATH) stay as the image will see them.
    "patchelf": FileCommand(frozenset({"--set-rpath", "--add-rpath", "--set-interpreter", "--set-soname"}), 0, "last", True),
}
_PATCHELF_FLAGS = {"--force-rpath"}
_ACCOUNT_COMMANDS = {"useradd", "groupadd", "usermod", "userdel", "groupdel"}


def _executable(name: str) -> str:
    # Tools that come from the lock (patchelf) live next to this interpreter.
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.is_file() else (shutil.which(name) or name)


def _host_command(replay: Replay, argv: list[str]) -> list[str] | None:
    name = argv[0]
    if name in _ACCOUNT_COMMANDS:
        return [_executable(name), "--prefix", str(replay.root), *argv[1:]]
    if name not in _FILE_COMMANDS:
        return None
    spec = _FILE_COMMANDS[name]
    if name == "patchelf":
        unknown = [w for w in argv[1:] if w.startswith("-") and w not in spec.valued | _PATCHELF_FLAGS]
        if unknown:
            raise ValueError(f"the replay does not model patchelf option(s) {unknown}")
    paths = _operands(argv, spec.valued)[spec.leading:]
    writes = paths if spec.writes == "all" or (name == "install" and "-d" in argv) else paths[-1:]
    command = [_executable(name), *argv[1:]]
    for i in paths:
        if i in writes:
            command[i] = replay.written(argv[i])
        elif spec.maps_reads:
            command[i] = str(replay.host(argv[i]))
    return command


def _replay_one(replay: Replay, argv: list[str]) -> None:
    command = _host_command(replay, argv)
    if command is None:
        replay.skipped.append(argv)
        return
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"`{shlex.join(argv)}` fails on the base image (exit {done.returncode}): {done.stderr.strip()}")


class CannotReplay(Exception):
    """This machine cannot replay a Dockerfile (tests skip with this reason)."""


def replay(image: Image, root: Path, mounts: dict[str, Path] | None = None) -> Replay:
    """Lay out the base under `root`, then run the Dockerfile's file-system steps there, in order."""
    if os.geteuid() != 0:
        raise CannotReplay("replaying a Dockerfile needs root (useradd --prefix, install -o)")
    if not BASE_PASSWD.is_dir():
        raise CannotReplay(f"{BASE_PASSWD} is missing (Debian's base-passwd package): the base accounts come from it")
    lay_out_base(base_facts(image.base), root)
    result = Replay(root, dict(mounts or {}))
    for run in image.runs:
        if run.user not in ("root", "0", "0:0"):
            raise ValueError(f"{image.dockerfile}: a RUN as {run.user} is not modelled (the replay runs as root)")
        result.workdir = run.workdir
        for argv in run.commands:
            _replay_one(result, argv)
    return result


def replay_image(name: str, root: Path) -> tuple[Image, Replay]:
    """images/<name>/Dockerfile replayed under `root`. Its virtualenv is this one: the image's lock is part of the
    dev set (requirements.lock) this one has."""
    image = load(ROOT / "images" / name / "Dockerfile")
    venv = image.env.get("VIRTUAL_ENV")
    return image, replay(image, root, {venv: Path(sys.prefix)} if venv else {})


def passwd_entry(root: Path, user: str) -> list[str] | None:
    """The /etc/passwd fields of `user` (a name or a uid) in a replayed root."""
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if user in (fields[0], fields[2]):
            return fields
    return None


def lock_pins(path: Path) -> dict[str, str]:
    """A lock file's pins (`uv pip compile` output), by canonical distribution name."""
    pins = [line.split("==") for line in path.read_text().splitlines() if "==" in line and not line.startswith((" ", "#"))]
    return {canonicalize_name(name): version for name, version in pins}
