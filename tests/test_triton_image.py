"""The Triton image, without Docker: its python-backend stub finds every library in the image's file layout.

The layout is images/triton/Dockerfile replayed over the base facts (tests/dockerfiles.py); the loader
search is glibc's (tests/elf_loader.py).
"""

from __future__ import annotations

import posixpath
import sys
from pathlib import Path

import pytest

import dockerfiles
from elf_loader import read_dynamic, resolve
from mlops.triton.server import find_tritonserver

IMAGE = dockerfiles.load(dockerfiles.ROOT / "images" / "triton" / "Dockerfile")
FACTS = dockerfiles.base_facts(IMAGE.base)
BACKENDS = "/opt/tritonserver/backends"  # tritonserver's default --backend-directory (its --help says so)
STUB = f"{BACKENDS}/python/triton_python_backend_stub"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"  # the lock's Python: this venv installs it
SITE_PACKAGES = f"{IMAGE.env['VIRTUAL_ENV']}/lib/python{PYTHON}/site-packages"


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
