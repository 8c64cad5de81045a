"""Locust load test of the full path (HTTP API -> Triton): each user asks the fixed realistic questions in turn.

Run by ``mlops bench`` (headless, 8 users, 60 s); by hand::

    locust -f model/mlops/bench/locustfile.py --headless -u 8 -r 8 -t 60s --host http://127.0.0.1:8080
"""

from __future__ import annotations

import itertools

from locust import FastHttpUser, task

from mlops.data.eval_sets import load_natural_questions

QUESTIONS = [q.question for q in load_natural_questions()]


class QaUser(FastHttpUser):
    # No wait between requests: each user is a closed loop, like the other benchmark clients.
    def on_start(self) -> None:
        self.questions = itertools.cycle(QUESTIONS)

    @task
    def ask(self) -> None:
        with self.client.post("/v1/ask", json={"question": next(self.questions), "top_k": 5}, name="/v1/ask",
                              catch_response=True) as response:
            if response.status_code != 200 or not response.json().get("answers"):
                response.failure(f"status {response.status_code}")
