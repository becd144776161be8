"""Every error leaves the API as JSON `{"detail": "<one clear sentence>"}`, never an HTML 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .app_state import NotReadyError
from .clip.preprocess import InvalidImageError
from .gallery import ReadOnlyItemError, UnknownItemError
from .store import IdempotencyKeyReusedError, StoreUnavailableError
from .uploads import UnsupportedImageError, UploadTooLargeError

log = logging.getLogger(__name__)

# Domain errors raised below the routes, and the status each means to a client.
STATUS_OF: dict[type[Exception], int] = {
    InvalidImageError: status.HTTP_400_BAD_REQUEST,
    ReadOnlyItemError: status.HTTP_403_FORBIDDEN,
    UnknownItemError: status.HTTP_404_NOT_FOUND,
    UploadTooLargeError: status.HTTP_413_CONTENT_TOO_LARGE,
    UnsupportedImageError: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    IdempotencyKeyReusedError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    NotReadyError: status.HTTP_503_SERVICE_UNAVAILABLE,
    StoreUnavailableError: status.HTTP_503_SERVICE_UNAVAILABLE,
}


async def _domain_error(request: Request, error: Exception) -> JSONResponse:
    code = next(code for kind, code in STATUS_OF.items() if isinstance(error, kind))
    headers = {"Retry-After": "5"} if code == status.HTTP_503_SERVICE_UNAVAILABLE else None
    return JSONResponse({"detail": str(error)}, status_code=code, headers=headers)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    # The input is left out on purpose: echoing a 10,000-character query back helps nobody.
    # A validator's ValueError reaches here as "Value error, <its message>": the message is the point.
    errors = [
        {"loc": list(e["loc"]), "msg": e["msg"].removeprefix("Value error, "), "type": e["type"]}
        for e in error.errors()
    ]
    summary = "; ".join(f"{'.'.join(str(part) for part in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": f"invalid request: {summary}", "errors": errors}, status_code=422)


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    for kind in STATUS_OF:
        app.add_exception_handler(kind, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
