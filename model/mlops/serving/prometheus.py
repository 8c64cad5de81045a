"""Prometheus metrics of the API, and the ASGI middleware that records every request.

The names here are what the Grafana dashboard and the alert rules in the Helm chart query
(``gitops/charts/transformers-qa/files/``); a test scrapes a live API and checks each one exists.
Each app gets its own registry, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# Latency buckets around the targets (p95 <= 100 ms through the API), with room on both sides.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("qa_http_requests_total", "HTTP requests by route, method and status code.",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("qa_http_request_duration_seconds", "HTTP request latency by route and method.",
                                 ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.answers = Counter("qa_answers_total", "Questions answered, by the model version that answered.",
                               ["model_version"], registry=self.registry)
        # By version, so that a canary's latency is compared with the stable version's (the chart's AnalysisTemplate).
        self.answer_latency = Histogram("qa_answer_duration_seconds", "Time to answer a question (Triton included), by the "
                                        "model version that answered.", ["model_version"], buckets=LATENCY_BUCKETS,
                                        registry=self.registry)
        self.abstentions = Counter("qa_abstentions_total", "Questions the model declined to answer (no confident answer), "
                                   "by model version; also counted in qa_answers_total.", ["model_version"], registry=self.registry)
        self.feedback = Counter("qa_feedback_total", "Feedback stored, by rating and the model version it rates.",
                                ["rating", "model_version"], registry=self.registry)
        self.triton_errors = Counter("qa_triton_errors_total", "Failed calls to Triton, by reason.",
                                     ["reason"], registry=self.registry)
        for reason in ("unavailable", "failed"):
            self.triton_errors.labels(reason)  # present (at 0) before the first error, for rate() and alerts

    def answered(self, version: str, seconds: float, abstained: bool) -> None:
        self.answers.labels(version).inc()
        self.answer_latency.labels(version).observe(seconds)
        if abstained:
            self.abstentions.labels(version).inc()
        for rating in ("up", "down"):  # the version's feedback series at 0 from its first answer: increase() counts the first rating
            self.feedback.labels(rating, version)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by the matched route template (bounded cardinality)."""

    def __init__(self, app, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def send_and_record(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            label = route.path if route is not None else "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(label, method, str(status)).inc()
            self.metrics.latency.labels(label, method).observe(time.perf_counter() - started)
