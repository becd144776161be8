"""FastAPI dependencies: the loaded state and the API key, as `Annotated` aliases.

All are `async def`: each only reads a field, and FastAPI runs a plain `def` dependency in its
thread pool, a thread hop per dependency per request that cost more than the work itself.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from .app_state import AppState
from .gallery import Gallery
from .served_model import ServedModel
from .settings import Settings


async def get_state(request: Request) -> AppState:
    return request.app.state.app_state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_model(state: StateDep) -> ServedModel:
    return state.require_model()


async def get_gallery(state: StateDep) -> Gallery:
    return state.require_gallery()


async def get_root_path(request: Request) -> str:
    """Where the client reached the API ("" direct, "/api" behind Nginx): see forwarded_prefix."""
    return request.scope.get("root_path", "")


SettingsDep = Annotated[Settings, Depends(get_settings)]
RootPathDep = Annotated[str, Depends(get_root_path)]
ModelDep = Annotated[ServedModel, Depends(get_model)]
GalleryDep = Annotated[Gallery, Depends(get_gallery)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The key configured in CLIP_API_KEY; needed for gallery writes."
)


async def require_api_key(key: Annotated[str | None, Security(_api_key_header)], state: StateDep) -> None:
    settings = state.settings
    if not state.writes_enabled:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "gallery writes are disabled: the server has no CLIP_API_KEY")
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header", headers={"WWW-Authenticate": "APIKey"}
        )
    # Constant-time comparison: response timing must not reveal how much of a guess was right.
    if not secrets.compare_digest(key.encode(), settings.api_key.get_secret_value().encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong API key")
