from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import ClipDep, ServicesDep
from ..schemas import Health, Info, Ready, error_responses

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Health:
    return Health(status="ok")


@router.get("/ready", summary="Readiness: model and gallery loaded", responses=error_responses(503))
async def ready(services: ServicesDep) -> Ready:
    reason = services.not_ready_reason
    if reason is not None:
        return JSONResponse({"detail": reason}, status_code=503, headers={"Retry-After": "5"})
    return Ready(
        status="ready",
        gallery_size=len(services.gallery),
        dataset=services.dataset_status,
        load_seconds=round(services.load_seconds, 3),
    )


@router.get("/v1/info", summary="The model, its metrics and the gallery", responses=error_responses(503))
async def info(clip: ClipDep, services: ServicesDep) -> Info:
    gallery = services.gallery
    return Info(
        model_name=clip.checkpoint.resolve().name,
        checkpoint=str(clip.checkpoint),
        checkpoint_sha256=clip.sha256,
        architecture=clip.config["model"],
        classes=clip.classes,
        embedding_dim=clip.dim,
        gallery_size=len(gallery) if gallery else 0,
        dataset=services.dataset_status,
        dataset_loaded=services.dataset_loaded,
        metrics=clip.metrics,
        search="exact" if gallery is None or len(gallery) <= gallery.index.exact_max else "faiss-ivf",
    )
