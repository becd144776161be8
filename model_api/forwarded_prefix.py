"""The path prefix a client reached the API under, so every URL the API returns works from there.

Behind the deployment's Nginx the API is at /api/ (the proxy strips the prefix and says so in
`X-Forwarded-Prefix: /api`); called directly it is at the root. This middleware makes the
header the request's ASGI `root_path`, which FastAPI already uses for /docs and the OpenAPI
`servers`, and from which the routes build `image_url`s. Without the header the server's own
root path stays (uvicorn's `--root-path`, empty by default).

The header is honoured from any client: it changes only the URLs in that client's own
response, never which route answers, so trusting it gives nothing away. Values that are not a
plain path (`/a/b`) are ignored, so no URL can be pointed at another host (`//evil.example`).
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX_HEADER = "x-forwarded-prefix"
PLAIN_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")


class ForwardedPrefixMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            prefix = Headers(scope=scope).get(PREFIX_HEADER, "").rstrip("/")
            if PLAIN_PATH.fullmatch(prefix):
                # In place, as uvicorn's proxy-headers middleware does: outer middleware (the
                # access log) reads the route the router records in this same scope.
                scope["root_path"] = prefix
        await self.app(scope, receive, send)
