"""FastAPI dependencies: the loaded services and the API key, as `Annotated` aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from .encoder import ClipService
from .gallery import Gallery
from .services import Services
from .settings import Settings


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


def get_clip(services: ServicesDep) -> ClipService:
    return services.require_clip()


def get_gallery(services: ServicesDep) -> Gallery:
    return services.require_gallery()


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClipDep = Annotated[ClipService, Depends(get_clip)]
GalleryDep = Annotated[Gallery, Depends(get_gallery)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The key configured in CLIP_API_KEY; needed for gallery writes."
)


def require_api_key(key: Annotated[str | None, Security(_api_key_header)], settings: SettingsDep) -> None:
    if settings.api_key is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "gallery writes are disabled: the server has no CLIP_API_KEY")
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header", headers={"WWW-Authenticate": "APIKey"}
        )
    # Constant-time comparison: response timing must not reveal how much of a guess was right.
    if not secrets.compare_digest(key.encode(), settings.api_key.get_secret_value().encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong API key")
