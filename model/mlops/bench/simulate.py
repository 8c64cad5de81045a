"""`mlops simulate`: bounded, seeded traffic of simulated users against an environment's API, with their feedback.

Each request draws a persona by its share (novice, experienced, researcher, off-topic: personas.yaml) and one of its
questions; the user then rates the top answer by a simple rule (personas.yaml says which). The same seed sends the
same questions in the same order, so two runs (before and during a canary, say) are comparable. It prints each
question and what came back, and returns a summary per persona. Used for staging load tests and to give a canary
traffic and ratings; its questions are in no evaluation set, and its ratings carry the comment `mlops simulate`,
which `mlops data` leaves out of training (mlops.data.feedback).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
import yaml
from pydantic import BaseModel, ConfigDict, Field

from mlops.core.errors import MlopsError
from mlops.data.feedback import SIMULATED

PERSONAS = Path(__file__).with_name("personas.yaml")


class PersonaQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=5)
    expect: list[str] = []  # empty: off-topic, any answer is wrong


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid")

    share: float = Field(gt=0)
    questions: list[PersonaQuestion] = Field(min_length=1)


def load_personas(path: Path = PERSONAS) -> dict[str, Persona]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {name: Persona.model_validate(p) for name, p in data["personas"].items()}


@dataclass(frozen=True)
class Request:
    persona: str
    question: PersonaQuestion


def plan(count: int, seed: int, personas: dict[str, Persona] | None = None) -> list[Request]:
    """The ``count`` requests a seed sends, in order."""
    personas = personas or load_personas()
    rng = random.Random(seed)
    names = list(personas)
    drawn = rng.choices(names, weights=[personas[n].share for n in names], k=count)
    return [Request(name, rng.choice(personas[name].questions)) for name in drawn]


def rating(request: Request, answer: dict) -> str | None:
    """The simulated user's verdict on the top answer: "up", "down", or None (it abstained: nothing to rate)."""
    if answer["abstained"] or not answer["answers"]:
        return None
    top = answer["answers"][0]["symbol"]
    return "up" if any(fragment in top for fragment in request.question.expect) else "down"


def simulate(url: str, count: int, seed: int, rate: float, feedback: bool = True, echo=print) -> dict:
    """Send ``count`` seeded requests to ``url`` at most ``rate`` a second; returns the summary per persona."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise MlopsError(f"--url {url!r} is not an http(s) URL, e.g. http://qa.203.0.113.10.nip.io")
    summary: dict[str, dict] = {}
    session = requests.Session()
    started = time.monotonic()
    echo(f"simulating {count} users against {url} (seed {seed}, at most {rate:g}/s, feedback {'on' if feedback else 'off'})")
    for i, request in enumerate(plan(count, seed)):
        time.sleep(max(0.0, started + i / rate - time.monotonic()))
        figures = summary.setdefault(request.persona, {"sent": 0, "answered": 0, "abstained": 0, "errors": 0,
                                                        "up": 0, "down": 0, "latency_ms": []})
        figures["sent"] += 1
        sent = time.perf_counter()
        try:
            response = session.post(f"{url}/v1/ask", json={"question": request.question.question}, timeout=30)
        except requests.RequestException as e:
            if i == 0:
                raise MlopsError(f"{url} is unreachable ({type(e).__name__}): is the API up, and is this its address?") from None
            figures["errors"] += 1
            echo(f"{i + 1:4d} {request.persona:<11} {request.question.question[:60]!r}: unreachable ({type(e).__name__})")
            continue
        latency = (time.perf_counter() - sent) * 1000
        if response.status_code != 200:
            figures["errors"] += 1
            echo(f"{i + 1:4d} {request.persona:<11} {request.question.question[:60]!r}: HTTP {response.status_code}")
            continue
        answer = response.json()
        figures["latency_ms"].append(latency)
        figures["abstained" if answer["abstained"] else "answered"] += 1
        verdict = rating(request, answer)
        got = "abstained" if answer["abstained"] else answer["answers"][0]["symbol"]
        if feedback and verdict:
            posted = session.post(f"{url}/v1/feedback", timeout=30, json={
                "question": request.question.question, "symbol": answer["answers"][0]["symbol"], "rating": verdict,
                "model_version": answer["model_version"], "comment": SIMULATED})
            if posted.status_code == 201:
                figures[verdict] += 1
            else:
                figures["errors"] += 1
        echo(f"{i + 1:4d} {request.persona:<11} {request.question.question[:60]!r} -> {got} "
             f"(version {answer['model_version']}, {latency:.0f} ms{', thumbs-' + verdict if feedback and verdict else ''})")
    for figures in summary.values():
        latencies = figures.pop("latency_ms")
        for q in (50, 95):
            figures[f"p{q}_ms"] = round(float(np.percentile(latencies, q)), 1) if latencies else None
    return summary
