"""Where glibc's dynamic loader finds the DT_NEEDED libraries of an executable, in an image we cannot run.

The search follows ld.so(8) and glibc's elf/dl-load.c (_dl_map_object): for a library that object L needs,
first the DT_RPATHs of L and of the objects that loaded it up to the executable (only when L has no
DT_RUNPATH, and skipping any object that has one), then LD_LIBRARY_PATH, then L's DT_RUNPATH, then the
ld.so.cache/default folders. `$ORIGIN` is the folder of the object itself. A name already loaded is not
searched again. Paths are the image's; `host` maps an image path to the file that stands for it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile


@dataclass(frozen=True)
class Dynamic:
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]


def read_dynamic(path: Path) -> Dynamic | None:
    """NEEDED, RPATH and RUNPATH of an ELF file (None for anything else, such as an empty stand-in)."""
    with path.open("rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
        f.seek(0)
        tags: dict[str, list[str]] = {"DT_NEEDED": [], "DT_RPATH": [], "DT_RUNPATH": []}
        for section in ELFFile(f).iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        tags["DT_NEEDED"].append(tag.needed)
                    elif tag.entry.d_tag == "DT_RPATH":
                        tags["DT_RPATH"] += tag.rpath.split(":")
                    elif tag.entry.d_tag == "DT_RUNPATH":
                        tags["DT_RUNPATH"] += tag.runpath.split(":")
    return Dynamic(tuple(tags["DT_NEEDED"]), tuple(tags["DT_RPATH"]), tuple(tags["DT_RUNPATH"]))


def _expand(entries: tuple[str, ...], origin: str) -> list[str]:
    # normpath keeps `..` from climbing above /, as the kernel does.
    return [posixpath.normpath(e.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)) for e in entries if e]


def resolve(executable: str, host: Callable[[str], Path], ld_library_path: list[str],
            default_dirs: list[str]) -> dict[str, str | None]:
    """Every library loaded for `executable` (transitively, through the ELF files found): name -> image path or None."""
    found: dict[str, str | None] = {}
    # (object's image path, its dynamic section, the objects that loaded it, nearest first)
    queue: list[tuple[str, Dynamic, list[tuple[str, Dynamic]]]] = []
    first = read_dynamic(host(executable))
    if first is None:
        raise ValueError(f"{executable} is not an ELF file")
    queue.append((executable, first, []))
    while queue:
        path, dynamic, loaders = queue.pop(0)
        for name in dynamic.needed:
            if name in found:
                continue
            chain = [(path, dynamic), *loaders]
            dirs: list[str] = []
            if not dynamic.runpath:
                for obj_path, obj in chain:
                    if not obj.runpath:
                        dirs += _expand(obj.rpath, posixpath.dirname(obj_path))
            dirs += ld_library_path
            dirs += _expand(dynamic.runpath, posixpath.dirname(path))
            dirs += default_dirs
            hit = next((posixpath.join(d, name) for d in dirs if host(posixpath.join(d, name)).is_file()), None)
            found[name] = hit
            if hit is not None:
                loaded = read_dynamic(host(hit))
                if loaded is not None:
                    queue.append((hit, loaded, chain))
    return found
