"""The Triton image, without Docker: its python-backend stub finds every library in the image's file layout,
and the real tritonserver runs the argv Kubernetes builds from the image and the chart, and answers.

The layout is images/triton/Dockerfile replayed over the base facts (tests/support/dockerfiles.py); the loader
search is glibc's (tests/support/elf_loader.py). The argv is containerd's combination of the Dockerfile's
ENTRYPOINT/CMD with the rendered container's command/args.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.release.layout import ENVIRONMENTS
from mlops.search.retriever import Retriever
from mlops.triton.client import TritonQAClient
from mlops.triton.server import HOST, TritonServer, find_tritonserver
from support import dockerfiles
from support.elf_loader import read_dynamic, resolve
from support.gitops import container, promoted_service
from support.package import QA_MODEL

IMAGE = dockerfiles.load(dockerfiles.ROOT / "images" / "triton" / "Dockerfile")
FACTS = dockerfiles.base_facts(IMAGE.base)
BACKENDS = "/opt/tritonserver/backends"  # tritonserver's default --backend-directory (its --help says so)
STUB = f"{BACKENDS}/python/triton_python_backend_stub"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"  # the lock's Python: this venv installs it
SITE_PACKAGES = f"{IMAGE.env['VIRTUAL_ENV']}/lib/python{PYTHON}/site-packages"
QUESTION = "How do I make my runs reproducible with a fixed random seed?"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dockerfiles.Replay:
    try:
        return dockerfiles.replay_image("triton", tmp_path_factory.mktemp("triton-image") / "root")[1]
    except dockerfiles.CannotReplay as e:
        pytest.skip(str(e))


def test_every_library_the_stub_needs_resolves_in_the_image(image: dockerfiles.Replay):
    ld_library_path = [p for p in IMAGE.env.get("LD_LIBRARY_PATH", "").split(":") if p]
    found = resolve(STUB, image.host, ld_library_path, FACTS["library_dirs"]["value"])

    missing = sorted(name for name, path in found.items() if path is None)
    stub = read_dynamic(image.host(STUB))
    assert not missing, f"the loader finds no {missing} for {STUB} in the image (RPATH {stub.rpath}, RUNPATH {stub.runpath})"
    # The wheel's own libraries (auditwheel-renamed, so nothing else provides them) come from the virtualenv.
    needed = stub.needed
    bundled = [n for n in needed if image.host(f"{SITE_PACKAGES}/nvidia_pytriton.libs/{n}").is_file()]
    assert any(n.startswith("libcudart") for n in bundled)
    assert {posixpath.dirname(found[n]) for n in bundled} == {f"{SITE_PACKAGES}/nvidia_pytriton.libs"}
    # libpython: the one deadsnakes installs with the virtualenv's interpreter, found in the system folders.
    libpython = f"libpython{PYTHON}.so.1.0"
    assert libpython in needed
    assert found[libpython] in [i["path"] for i in FACTS["dockerfile_installs"]]


def test_the_stub_embeds_the_virtualenvs_python():
    """The base's stub is for its own Python; the image's virtualenv, its stub and the lock agree on another."""
    commands = [argv for run in IMAGE.runs for argv in run.commands]
    venv = next(argv for argv in commands if argv[1:3] == ["-m", "venv"])
    copy = next(argv for argv in commands if argv[0] == "cp" and argv[-1] == STUB)
    assert venv[0] == f"python{PYTHON}" and venv[3] == IMAGE.env["VIRTUAL_ENV"]
    assert f"/python_backend_stubs/{PYTHON}/" in copy[1]
    assert FACTS["python"]["version"] != PYTHON, "the base's own stub would do: drop the copied one"
    wheel_stub = Path(find_tritonserver()).parents[1] / "python_backend_stubs" / PYTHON / "triton_python_backend_stub"
    assert f"libpython{PYTHON}.so.1.0" in read_dynamic(wheel_stub).needed


# -- the argv ----------------------------------------------------------------------------------------------
def kubernetes_argv(entrypoint: list[str], cmd: list[str], command: list[str] | None, args: list[str] | None) -> list[str]:
    """The process argv of a container, as containerd's CRI plugin builds it (WithProcessArgs, in
    pkg/cri/opts/spec.go of containerd 1.7 and internal/cri/opts/spec.go of 2.x; k3s runs containerd):
    `command` replaces ENTRYPOINT and drops CMD; `args` alone replaces CMD. Kubelet passes both through
    after expanding $(VAR) references, which the Triton container does not use."""
    command, args = list(command or []), list(args or [])
    assert "$(" not in " ".join(command + args), "kubelet would expand $(VAR) here: model that first"
    if not command:
        args = args or list(cmd)
        command = [] if entrypoint == [""] else list(entrypoint)
    assert command or args, "no command specified"
    return command + args


def image_which(name: str, image: dockerfiles.Replay) -> str:
    """What a bare argv[0] runs: the first match on the image's PATH (runc looks it up there)."""
    for folder in IMAGE.env["PATH"].split(":"):
        if image.host(posixpath.join(folder, name)).is_file():
            return posixpath.join(folder, name)
    raise AssertionError(f"{name} is not on the image's PATH {IMAGE.env['PATH']}")


def triton_defaults() -> dict[str, int]:
    """The listening ports tritonserver uses when its argv names none, from the real binary's --help."""
    done = subprocess.run([str(find_tritonserver()), "--help"], capture_output=True, text=True, timeout=60)
    text = done.stdout + done.stderr
    return {role: int(re.search(rf"--{role}-port <integer>\s+[^-]*?Default is (\d+)", text).group(1))
            for role in ("http", "grpc", "metrics")}


# What must differ between the pod and this machine, and only that:
#   argv[0]    the image's PATH finds the base's /opt/tritonserver/bin/tritonserver; here the binary of the
#              same release (2.51, NGC 24.10) from the nvidia-pytriton wheel.
#   /models    the pod's emptyDir, which its init containers fill; here the test's model repository.
#   backends   the pod uses the default /opt/tritonserver/backends, where the Dockerfile puts the 3.11 stub
#              (test above); here the local launcher's folder of the wheel's python backend
#              (--backend-directory), and its environment (server_env) instead of the Dockerfile's ENV.
#   listening  the pod uses Triton's default ports on every interface (checked against the chart's ports
#              below); here 127.0.0.1 and free ports, as every test server.
LOCAL_OPTIONS = ("--backend-directory", "--http-address", "--http-port", "--grpc-address", "--grpc-port",
                 "--metrics-address", "--metrics-port", "--allow-metrics")


def local_argv(pod_argv: list[str], mount: str, repository: Path, backend_dir: Path, ports: dict[str, int]) -> list[str]:
    argv = [str(find_tritonserver())]
    for word in pod_argv[1:]:
        option, eq, value = word.partition("=")
        assert option not in LOCAL_OPTIONS, f"the pod sets {option}: the test maps it and must say how"
        if value == mount or value.startswith(mount + "/"):
            word = f"{option}={repository}{value[len(mount):]}"
        argv.append(word)
    return argv + [f"--backend-directory={backend_dir}", "--allow-metrics=true",
                   *(f"--{role}-{what}" for role in ("http", "grpc", "metrics")
                     for what in (f"address={HOST}", f"port={ports[role]}"))]


class PodArgvTriton(TritonServer):
    """The local launcher (ports, environment, start and stop) running the pod's argv."""

    def __init__(self, pod_argv: list[str], mount: str, repository: Path, work_dir: Path) -> None:
        super().__init__(repository, work_dir)
        self.pod_argv, self.mount = pod_argv, mount

    def _command(self, backend_dir: Path) -> list[str]:
        return local_argv(self.pod_argv, self.mount, self.model_repository, backend_dir, self._ports)


def _pod(env: str) -> tuple[list[str], dict]:
    triton = container(promoted_service(env), "triton")
    return kubernetes_argv(IMAGE.entrypoint, IMAGE.cmd, triton.get("command"), triton.get("args")), triton


def test_chart_ports_are_the_ones_tritonserver_listens_on():
    defaults = triton_defaults()
    for env in ENVIRONMENTS:
        argv, triton = _pod(env)
        assert not [w for w in argv if w.split("=")[0] in LOCAL_OPTIONS[1:]], "the chart relies on Triton's default ports"
        assert {p["name"]: p["containerPort"] for p in triton["ports"]} == defaults


def test_tritonserver_loads_and_answers_with_the_argv_kubernetes_runs(image: dockerfiles.Replay, qa_repository: Path,
                                                                       tmp_path: Path):
    pods = {env: _pod(env) for env in ENVIRONMENTS}
    argvs = {tuple(argv) for argv, _ in pods.values()}
    expected = Retriever.load(qa_repository / QA_MODEL / "1").search([QUESTION], top_k=3)[0]
    for i, argv in enumerate(sorted(argvs)):
        assert image_which(argv[0], image) == "/opt/tritonserver/bin/tritonserver"
        triton = next(t for a, t in pods.values() if tuple(a) == argv)
        models = next(m["mountPath"] for m in triton["volumeMounts"] if m["name"] == "models")
        assert f"--load-model={QA_MODEL}" in argv, f"the test's repository holds {QA_MODEL}; the pod loads {argv}"
        # strict readiness: start() returns once the server is ready, which here means the model loaded
        with PodArgvTriton(list(argv), models, qa_repository, tmp_path / str(i)) as server, \
                TritonQAClient(server.http_url) as client:
            assert client.is_model_ready(QA_MODEL)
            answers = client.ask([QUESTION], top_k=3, model_name=QA_MODEL)[0]["answers"]
        assert [a["symbol"] for a in answers] == [a["symbol"] for a in expected]
