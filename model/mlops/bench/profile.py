"""Where the served model spends its time under load: py-spy samples of Triton's python-backend stubs.

Each sampled stack is put in the first stage whose function it passes through, so the shares say
what bounds throughput (on CPU: the encoder's forward pass).
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path

import psutil

# (stage, function on the stack) in order of precedence: a stack in Encoder.embed is also in Retriever.rank, one in
# OnnxEncoder._tokenize also in OnnxEncoder.encode.
STAGES = (
    ("encoder forward (torch)", "Encoder.embed"),
    ("tokenization", "Encoder.tokenize"),
    ("tokenization", "OnnxEncoder._tokenize"),
    ("encoder forward (ONNX Runtime)", "OnnxEncoder.encode"),
    ("BM25", "BM25Index.scores"),
    ("fuse and rank", "Retriever.rank"),
    ("fuse and rank", "Retriever.reply"),  # what reply does beside the encoder and BM25: fuse, abstain, build answers
    ("answers to JSON", "TritonPythonModel.execute"),
)
OUTSIDE = "outside execute (request hand-off)"


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def start(triton_pid: int, seconds: int, out_dir: Path) -> list[tuple[subprocess.Popen, Path]]:
    """Start sampling every python-backend stub of the Triton process for ``seconds``."""
    binary = py_spy()
    if binary is None:
        return []
    stubs = [p for p in psutil.Process(triton_pid).children(recursive=True) if "triton_python_backend_stub" in p.name()]
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for stub in stubs:
        out = out_dir / f"py-spy-{stub.pid}.txt"
        command = [binary, "record", "--pid", str(stub.pid), "--duration", str(seconds), "--rate", "50",
                   "--format", "raw", "--output", str(out), "--nonblocking"]
        runs.append((subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out))
    return runs


def stage_of(stack: str) -> str:
    frames = [frame.split(" (", 1)[0] for frame in stack.split(";")]
    for stage, function in STAGES:
        if function in frames:
            return stage
    return OUTSIDE


def finish(runs: list[tuple[subprocess.Popen, Path]]) -> dict:
    """Wait for the samplers; the share of samples per stage (or why there is no profile)."""
    if not runs:
        return {"error": "py-spy is not installed, or Triton has no python-backend stub"}
    samples: collections.Counter[str] = collections.Counter()
    for proc, out in runs:
        _, stderr = proc.communicate(timeout=120)
        if proc.returncode != 0 or not out.is_file():
            return {"error": f"py-spy failed: {stderr.decode(errors='replace').strip()[-300:]}"}
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            samples[stage_of(stack)] += int(count)
    total = sum(samples.values()) or 1
    return {"samples": total, "share": {stage: round(n / total, 3) for stage, n in samples.most_common()}}
