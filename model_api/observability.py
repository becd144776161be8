"""Access logs (one JSON object per request, with latency) and Prometheus metrics.

A plain ASGI middleware rather than `@app.middleware("http")`: it adds no task or stream per
request, which matters at the millisecond latencies the search targets.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("model_api.access")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The service's metrics, in a registry of its own so each app instance (and test) is separate."""

    def __init__(self, gallery_size: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "clip_api_requests", "Requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "clip_api_request_duration_seconds",
            "Time from request start to the end of the response",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        Gauge("clip_api_gallery_items", "Searchable gallery items", registry=self.registry).set_function(gallery_size)


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app dies before sending a response

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        # The route template (/v1/gallery/{item_id}), not the raw path, keeps label cardinality bounded.
        route = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.latency.labels(method, route).observe(seconds)
        client = scope.get("client")
        access_log.info(
            json.dumps(
                {
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "latency_ms": round(seconds * 1000, 2),
                    "client": client[0] if client else None,
                }
            )
        )


def install_observability(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(AccessLogMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
