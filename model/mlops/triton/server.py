"""Run the real ``tritonserver`` binary shipped in the nvidia-pytriton wheel on a plain model repository.

The wheel carries Triton 2.51 and its python backend. Three things make the backend's stub (an
embedded Python interpreter) behave like the running virtualenv:

- ``LD_LIBRARY_PATH`` starts with the interpreter's LIBDIR, so the stub links the same libpython as
  this interpreter (another libpython breaks extension modules with undefined symbols), followed by
  the wheel's bundled libraries (the copied stub's ``$ORIGIN`` rpath does not reach them).
- ``PATH`` starts with the virtualenv's ``bin/``: the embedded interpreter finds its prefix by looking
  up ``python3`` on PATH, so it adopts the virtualenv (its site-packages and ``.pth`` files) instead of
  the base installation, whose site-packages may hold numpy 2 (BYTES tensors then fail to decode).
- ``PYTHONPATH`` names the virtualenv's site-packages and the folder holding the ``mlops`` package
  (an editable install), so model code imports both even where the PATH lookup does not apply.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import mlops
from mlops.core.errors import MlopsError
from mlops.core.processes import start_group, stop_group
from mlops.core.text import one_line

HOST = "127.0.0.1"
STOP_GRACE_S = 15.0
# load_model blocks until the model's initialize() returns; that includes loading the encoder.
LOAD_TIMEOUT_S = 600
# Triton waits this long for in-flight requests after SIGTERM; keep it below STOP_GRACE_S.
EXIT_TIMEOUT_S = 5
# Logged at every start on machines without a usable GPU; none of them stops the server.
_HARMLESS = re.compile(r"CUDA|NVML|DCGM|CudaDriverHelper|pinned memory", re.IGNORECASE)
_ERROR_LINE = re.compile(r"^E\d{4} |error|fail|invalid|bad option", re.IGNORECASE)
# Triton's log prefix: severity+date, time, thread id, source location.
_LOG_PREFIX = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")


def _pytriton_dir() -> Path | None:
    # find_spec locates the package without importing it (its __init__ pulls in a lot).
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_tritonserver() -> Path:
    """The ``tritonserver`` binary inside the installed nvidia-pytriton package."""
    package = _pytriton_dir()
    binary = package / "tritonserver" / "bin" / "tritonserver" if package else None
    if binary is None or not os.access(binary, os.X_OK):
        where = binary or "the nvidia-pytriton package"
        raise MlopsError(f"tritonserver binary not found ({where} is missing): run `make setup` "
                         "(it installs nvidia-pytriton==0.7.0)")
    return binary


def _triton_home() -> Path:
    return find_tritonserver().parent.parent


def _wheel_libs_dir() -> Path:
    # auditwheel puts the wheel's shared libraries next to the package: site-packages/nvidia_pytriton.libs
    return _triton_home().parent.parent / "nvidia_pytriton.libs"


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists() and dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime_ns == src.stat().st_mtime_ns:
        return
    # Copy then rename: overwriting a stub that a running server executes fails with ETXTBSY.
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def prepare_backend_dir(dest: Path) -> Path:
    """Build ``dest/python/`` (backend library, utils, stub for this Python) and return ``dest``."""
    home = _triton_home()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = home / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise MlopsError(f"no Triton python backend stub for Python {version} in {stub.parent.parent}: "
                         "use a Python version that nvidia-pytriton supports (3.8 to 3.13)")
    sources = [home / "backends" / "python" / name
               for name in ("libtriton_python.so", "triton_python_backend_utils.py")] + [stub]
    python_dir = dest / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for src in sources:
        _copy_if_changed(src, python_dir / src.name)
    return dest


def _prepend(env: dict[str, str], key: str, paths: list[str]) -> None:
    existing = [p for p in env.get(key, "").split(os.pathsep) if p]
    env[key] = os.pathsep.join(dict.fromkeys(paths + existing))


def server_env() -> dict[str, str]:
    """The environment under which the python backend's stub behaves like this interpreter."""
    env = dict(os.environ)
    _prepend(env, "LD_LIBRARY_PATH", [sysconfig.get_config_var("LIBDIR"), str(_wheel_libs_dir())])
    _prepend(env, "PATH", [sysconfig.get_paths()["scripts"]])
    mlops_parent = str(Path(mlops.__file__).resolve().parent.parent)
    _prepend(env, "PYTHONPATH", [sysconfig.get_paths()["purelib"], mlops_parent])
    env["PYTHONUTF8"] = "1"  # the stub starts under the C locale: text files would otherwise be read as ASCII
    return env


def free_ports(count: int) -> list[int]:
    # Hold all sockets open while picking so the ports are distinct.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def check_port_free(port: int, role: str, host: str = HOST) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Same option Triton and uvicorn use, so a port in TIME_WAIT is not reported as busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise MlopsError(f"{role} port {port} on {host} is not available ({e.strerror}): stop what "
                             "listens there or choose another port") from None


def _reason(text: str) -> str:
    # Triton appends the Python traceback after "\n\nAt:" (escaped in its log); the reason comes before.
    return one_line(text.replace("\\n", "\n").split("\n\nAt:")[0])


def relevant_log_line(log: Path) -> str:
    """The last error line of a Triton log that is not a harmless GPU warning ('' when none)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    # Indented lines are the usage text Triton prints after a bad option, not the reason.
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln[0].isspace() and not _HARMLESS.search(ln)]
    errors = [ln for ln in lines if _ERROR_LINE.search(ln)]
    candidates = errors or lines
    return _reason(_LOG_PREFIX.sub("", candidates[-1]).strip('"')) if candidates else ""


class TritonServer:
    """A ``tritonserver`` process in explicit model-control mode, bound to 127.0.0.1 only."""

    def __init__(
        self,
        model_repository: Path,
        work_dir: Path,
        *,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        startup_timeout_s: float = 120,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.work_dir = Path(work_dir).resolve()
        self.startup_timeout_s = startup_timeout_s
        self.log_path = self.work_dir / "tritonserver.log"
        self._requested = {"http": http_port, "grpc": grpc_port, "metrics": metrics_port}
        self._ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: httpclient.InferenceServerClient | None = None

    @property
    def http_url(self) -> str:
        return self._url("http")

    @property
    def grpc_url(self) -> str:
        return self._url("grpc")

    @property
    def metrics_url(self) -> str:
        return self._url("metrics")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _url(self, role: str) -> str:
        if role not in self._ports:
            raise MlopsError("the Triton server has not been started: call start() or use it as a context manager")
        return f"{HOST}:{self._ports[role]}"

    def _resolve_ports(self) -> dict[str, int]:
        for role, port in self._requested.items():
            if port is not None:
                check_port_free(port, role)
        missing = [role for role, port in self._requested.items() if port is None]
        picked = dict(zip(missing, free_ports(len(missing)), strict=True))
        return {role: port if port is not None else picked[role] for role, port in self._requested.items()}

    def _command(self, backend_dir: Path) -> list[str]:
        p = self._ports
        return [
            str(find_tritonserver()),
            f"--model-repository={self.model_repository}",
            "--model-control-mode=explicit",
            f"--backend-directory={backend_dir}",
            f"--http-address={HOST}", f"--http-port={p['http']}",
            f"--grpc-address={HOST}", f"--grpc-port={p['grpc']}",
            "--allow-metrics=true", f"--metrics-address={HOST}", f"--metrics-port={p['metrics']}",
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
        ]

    def start(self) -> TritonServer:
        if self._proc is not None:
            return self
        if not self.model_repository.is_dir():
            raise MlopsError(f"Triton model repository {self.model_repository} does not exist: export a model first")
        find_tritonserver()  # fail on a missing binary before touching ports or files
        self._ports = self._resolve_ports()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        command = self._command(prepare_backend_dir(self.work_dir / "backends"))
        self.log_path.unlink(missing_ok=True)
        self._proc = start_group(command, self.log_path, env=server_env())  # stop() reaps the backend stubs too
        self._client = httpclient.InferenceServerClient(self.http_url, connection_timeout=5,
                                                        network_timeout=LOAD_TIMEOUT_S)
        try:
            self._wait_live(self._proc, self._client)
        except BaseException:
            self.stop()
            raise
        return self

    def _failure(self, what: str) -> MlopsError:
        line = relevant_log_line(self.log_path)
        return MlopsError(f"{what}: {line or 'no error in the log'} (log: {self.log_path})")

    def _wait_live(self, proc: subprocess.Popen[bytes], client: httpclient.InferenceServerClient) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise self._failure(f"tritonserver exited with code {proc.returncode} during startup")
            try:
                if client.is_server_live() and client.is_server_ready():
                    return
            except (InferenceServerException, OSError):
                pass  # not listening yet
            time.sleep(0.2)
        raise self._failure(f"tritonserver was not live after {self.startup_timeout_s:g} s")

    def load_model(self, name: str) -> None:
        """Load ``name`` (explicit mode) and wait until Triton reports it ready."""
        client = self._running_client()
        try:
            client.load_model(name)
        except InferenceServerException as e:
            raise MlopsError(f"Triton could not load model {name!r}: {_reason(e.message())} "
                             f"(log: {self.log_path})") from None
        except OSError as e:
            raise self._failure(f"Triton stopped answering while loading model {name!r} ({e})") from None
        # A successful load normally means ready; the poll covers a model that dies right after.
        deadline = time.monotonic() + 30
        while not client.is_model_ready(name):
            if time.monotonic() > deadline:
                raise self._failure(f"model {name!r} loaded but was not ready 30 s later")
            time.sleep(0.2)

    def unload_model(self, name: str) -> None:
        """Unload ``name`` and wait until Triton no longer reports it ready (its instances have stopped)."""
        client = self._running_client()
        try:
            client.unload_model(name, unload_dependents=True)
        except InferenceServerException as e:
            raise MlopsError(f"Triton could not unload model {name!r}: {_reason(e.message())} (log: {self.log_path})") from None
        deadline = time.monotonic() + 30
        while client.is_model_ready(name):
            if time.monotonic() > deadline:
                raise self._failure(f"model {name!r} was still ready 30 s after its unload")
            time.sleep(0.2)

    def _running_client(self) -> httpclient.InferenceServerClient:
        if self._proc is None or self._client is None:
            raise MlopsError("the Triton server has not been started: call start() or use it as a context manager")
        if self._proc.poll() is not None:
            raise self._failure(f"tritonserver has exited with code {self._proc.returncode}")
        return self._client

    def stop(self) -> None:
        """SIGTERM, wait up to STOP_GRACE_S, then SIGKILL the whole process group; safe to call twice."""
        proc, self._proc = self._proc, None
        if self._client is not None:
            self._client.close()
            self._client = None
        if proc is not None:
            stop_group(proc, STOP_GRACE_S)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
