"""`mlops bench`: how fast the champion answers, served four ways, measured in one run on this machine.

- bound:  the in-process upper bound: all questions encoded and searched in batches, no server;
- triton: the real Triton with dynamic batching, driven with tritonclient (async) at each concurrency;
- naive:  the same model behind a one-request-at-a-time HTTP server (no batching), same clients;
- api:    the full path (HTTP API -> Triton) under a headless Locust run;
- variants: each encoder variant of the champion (torch-fp32, onnx-fp32, onnx-int8) through Triton, in rotating
  rounds on one server, and in process.

While Triton serves 8 concurrent clients, py-spy samples its model processes to say what bounds it.

All use the same fixed set of realistic questions (the hand-written natural questions). Writes
``<reports>/bench.json`` and ``<reports>/bench.png``. Servers bind 127.0.0.1 on free ports and are
stopped at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import aiohttp
import matplotlib

from mlops.bench import profile
from mlops.bench.config import BenchConfig
from mlops.bench.load import LoadResult, Samples, drive, sample, summarise
from mlops.bench.variants import variant_models
from mlops.core.errors import MlopsError
from mlops.core.processes import start_group, stop_group
from mlops.core.settings import Settings
from mlops.data.eval_sets import load_natural_questions
from mlops.evaluation.evaluate import search_throughput
from mlops.lifecycle.registry import served_champion
from mlops.search.retriever import Retriever
from mlops.search.settings import TORCH_FP32
from mlops.serving.gateway import TritonGateway
from mlops.triton.server import TritonServer, free_ports

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TOP_K = 5
PROFILED_CONCURRENCY = 8
PROFILE_SECONDS = 5
# Run by path in its own process: importing locust here would monkey-patch this one with gevent.
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
WARMUP_REQUESTS = 16
ROUNDS = 3


@contextmanager
def _process(name: str, command: list[str], log: Path, ready_url: str, env: dict | None = None, timeout_s: float = 120):
    """A server subprocess (own process group) that is up once ``ready_url`` answers; always stopped."""
    log.unlink(missing_ok=True)
    proc = start_group(command, log, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise MlopsError(f"the {name} exited with {proc.returncode} while starting (log: {log})")
            try:
                urllib.request.urlopen(ready_url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise MlopsError(f"the {name} was not up at {ready_url} within {timeout_s:g} s (log: {log})") from None
                time.sleep(0.25)
        yield proc
    finally:
        stop_group(proc, grace_s=15)


async def _triton_levels(url: str, models: list[str], questions: list[str], concurrency: int, total: int) -> dict[str, LoadResult]:
    """Each model through Triton at one concurrency, in ``ROUNDS`` rounds whose order rotates, so that a slower minute
    of a shared machine falls on each model alike rather than on whichever was measured then."""
    gateways = {model: TritonGateway(url, model, timeout_s=60, connections=max(concurrency, 1)) for model in models}
    sends = {model: partial(gateway.ask, top_k=TOP_K) for model, gateway in gateways.items()}
    runs: dict[str, list[Samples]] = {model: [] for model in models}
    try:
        for model, gateway in gateways.items():
            await gateway.open()
            await drive(sends[model], questions, min(concurrency, 4), WARMUP_REQUESTS)
        asked = 0
        for r in range(ROUNDS):
            count = total // ROUNDS + (r < total % ROUNDS)  # the rounds add up to ``total``
            # Each round goes on through the questions where the last one stopped, so every question is asked.
            start = asked % len(questions)
            for model in models[r % len(models):] + models[:r % len(models)]:
                runs[model].append(await sample(sends[model], questions[start:] + questions[:start], concurrency, count))
            asked += count
    finally:
        for gateway in gateways.values():
            await gateway.close()
    return {model: summarise(concurrency, *samples) for model, samples in runs.items()}


async def _http_level(url: str, questions: list[str], concurrency: int, total: int) -> LoadResult:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120),
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def send(question: str) -> None:
            async with session.post(url, json={"question": question, "top_k": TOP_K}) as response:
                response.raise_for_status()
                await response.read()

        await drive(send, questions, min(concurrency, 4), WARMUP_REQUESTS)
        return await drive(send, questions, concurrency, total)


def _locust(api_url: str, users: int, seconds: int, out_dir: Path) -> dict:
    prefix = out_dir / "locust"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
               "-t", f"{seconds}s", "--host", api_url, "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    stats = prefix.with_name("locust_stats.csv")
    if not stats.is_file():
        raise MlopsError(f"locust wrote no statistics (exit {done.returncode}): {done.stderr.strip()[-400:]}")
    with stats.open() as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    return {"users": users, "seconds": seconds, "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
            "qps": round(float(row["Requests/s"]), 1), "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"]),
            "p99_ms": float(row["99%"])}


def _plot(report: dict, path: Path) -> None:
    levels = sorted(int(c) for c in report["concurrency"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    for system, style in (("triton", "o-"), ("naive", "s--")):
        left.plot(levels, [report["concurrency"][str(c)][system]["qps"] for c in levels], style, label=system)
        right.plot(levels, [report["concurrency"][str(c)][system]["p95_ms"] for c in levels], style, label=system)
    for variant, figures in report.get("variants", {}).items():
        left.plot(levels, [figures[str(c)]["qps"] for c in levels], "^:", label=f"triton, {variant} encoder")
        right.plot(levels, [figures[str(c)]["p95_ms"] for c in levels], "^:", label=f"triton, {variant} encoder")
    left.axhline(report["bound"]["qps"], color="grey", linestyle=":", label="in-process bound")
    if "api" in report:
        left.plot([report["api"]["users"]], [report["api"]["qps"]], "r*", markersize=12, label="API (Locust)")
        right.plot([report["api"]["users"]], [report["api"]["p95_ms"]], "r*", markersize=12, label="API (Locust)")
    for axis, label in ((left, "questions / s"), (right, "p95 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(c) for c in levels])
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    right.set_yscale("log")
    fig.suptitle(f"Serving model version {report['model_version']} on {os.cpu_count()} CPU cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _row(name: str, r: LoadResult | dict) -> str:
    r = r if isinstance(r, dict) else r.model_dump()
    return f"  {name:<8} c={r.get('concurrency', r.get('users')):<3} {r['qps']:>7.1f} q/s   p50 {r['p50_ms']:>7.1f}  p95 {r['p95_ms']:>7.1f}  " \
           f"p99 {r['p99_ms']:>7.1f} ms   failures {r['failures']}"


def run_bench(settings: Settings, config: BenchConfig, echo=print) -> dict:
    natural = load_natural_questions(settings.natural_questions) if settings.natural_questions else load_natural_questions()
    questions = [q.question for q in natural]
    version = served_champion(settings)
    folder = settings.served_folder(version.version)
    out_dir = settings.reports_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = settings.logs_dir / "bench"
    echo(f"benchmarking {settings.model_name} version {version.version} with {len(questions)} questions, "
         f"{config.requests} requests per level")

    retriever = Retriever.load(folder)
    bound = search_throughput(retriever, questions * max(1, 256 // len(questions)))
    del retriever  # free the memory before the servers load their own copies
    echo(f"  bound    in-process batched: {bound:.1f} q/s")
    report: dict = {"model_version": str(version.version), "questions": len(questions), "cpu_count": os.cpu_count(),
                    "requests_per_level": config.requests, "bound": {"qps": round(bound, 1)}, "concurrency": {}}

    with TritonServer(settings.triton_repository, logs / "triton") as triton:
        triton.load_model(settings.model_name)
        for c in config.concurrency:
            # The profile is taken at the concurrency the targets name; sampling costs a little CPU.
            sampling = profile.start(triton.pid, PROFILE_SECONDS, logs) if c == PROFILED_CONCURRENCY else None
            result = asyncio.run(_triton_levels(triton.http_url, [settings.model_name], questions, c, config.requests))[settings.model_name]
            report["concurrency"][str(c)] = {"triton": result.model_dump(exclude={"concurrency"})}
            echo(_row("triton", result))
            if sampling is not None:
                report["triton_profile"] = profile.finish(sampling)
                shares = report["triton_profile"].get("share", report["triton_profile"])
                echo(f"           py-spy on the Triton model at c={c}: " + ", ".join(f"{k} {v:.0%}" if isinstance(v, float) else v
                                                                              for k, v in shares.items()))

        naive_port = free_ports(1)[0]
        naive = [sys.executable, "-m", "mlops.bench.naive_server", str(folder), str(naive_port)]
        with _process("naive server", naive, logs / "naive.log", f"http://127.0.0.1:{naive_port}/"):
            for c in config.concurrency:
                result = asyncio.run(_http_level(f"http://127.0.0.1:{naive_port}/", questions, c, config.requests))
                report["concurrency"][str(c)]["naive"] = result.model_dump(exclude={"concurrency"})
                echo(_row("naive", result))

        api_port = free_ports(1)[0]
        api_url = f"http://127.0.0.1:{api_port}"
        serve = [sys.executable, "-m", "mlops", "serve", "--port", str(api_port), "--triton-url", triton.http_url]
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{logs / 'bench-feedback.db'}"}
        with _process("API", serve, logs / "api.log", api_url + "/healthz", env=env):
            echo(f"  api      Locust, {config.api_users} users for {config.api_seconds} s …")
            report["api"] = _locust(api_url, config.api_users, config.api_seconds, logs)
            echo(_row("api", report["api"]))

    # The same questions through each encoder variant of the champion, on a Triton of their own.
    repository = logs / "variants"
    shutil.rmtree(repository, ignore_errors=True)
    models = variant_models(settings, version, repository, questions, echo)
    report["variants"] = {variant: {"bound_qps": m["bound_qps"]} for variant, m in models.items()}
    with TritonServer(repository, logs / "triton-variants") as triton:
        for m in models.values():
            triton.load_model(m["model"])  # all at once: a model that waits for its turn uses no CPU
        for c in config.concurrency:
            results = asyncio.run(_triton_levels(triton.http_url, [m["model"] for m in models.values()], questions, c,
                                                  config.requests))
            for variant, m in models.items():
                result = results[m["model"]]
                report["variants"][variant][str(c)] = {"qps": result.qps, "p95_ms": result.p95_ms, "failures": result.failures}
                echo(_row(variant[:8], result))
    torch_qps = report["variants"][TORCH_FP32]
    for variant, figures in report["variants"].items():
        for c in config.concurrency:
            figures[str(c)]["vs_torch"] = round(figures[str(c)]["qps"] / max(torch_qps[str(c)]["qps"], 1e-9), 2)
        echo(f"  {variant:<10} through Triton vs torch-fp32: "
             + ", ".join(f"c={c} {figures[str(c)]['vs_torch']:.2f}x" for c in config.concurrency))

    for c, systems in report["concurrency"].items():
        systems["triton_vs_naive"] = round(systems["triton"]["qps"] / max(systems["naive"]["qps"], 1e-9), 2)
        systems["triton_vs_bound"] = round(systems["triton"]["qps"] / max(bound, 1e-9), 2)
        echo(f"  c={c:<3} triton/naive {systems['triton_vs_naive']:.2f}x   triton/bound {systems['triton_vs_bound']:.2f}")
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    _plot(report, out_dir / "bench.png")
    echo(f"wrote {out_dir / 'bench.json'} and {out_dir / 'bench.png'}")
    return report
