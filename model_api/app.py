"""The FastAPI application: `create_app(settings)` wires settings, state, routes and middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from threadpoolctl import threadpool_limits

from .app_state import AppState
from .errors import install_error_handlers
from .forwarded_prefix import ForwardedPrefixMiddleware
from .observability import Metrics, install_observability
from .routes import classify, gallery, health, search
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state = AppState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threadpool_limits(settings.blas_threads, user_api="blas")  # process-wide: numpy's and scipy's BLAS
        torch.set_num_threads(settings.torch_threads)  # for every thread started after: loader, requests
        # Load in a worker thread: the server accepts requests at once, /health answers and
        # /ready says 503 with the reason until the model and gallery are in.
        loading = asyncio.create_task(asyncio.to_thread(state.load))
        try:
            yield
        finally:
            # A thread cannot be cancelled: ask the loader to stop between two batches, and let it
            # return before the store closes.
            state.stopping.set()
            await loading
            state.close()

    app = FastAPI(
        title="CLIP CIFAR-10 API",
        version="1.0.0",
        summary="Zero-shot classification and text/image search over a persistent gallery.",
        lifespan=lifespan,
    )
    app.state.app_state = state
    install_error_handlers(app)
    app.add_middleware(ForwardedPrefixMiddleware)
    install_observability(app, Metrics(gallery_size=lambda: len(state.gallery) if state.gallery else 0))
    for module in (health, classify, search, gallery):
        app.include_router(module.router)
    return app
