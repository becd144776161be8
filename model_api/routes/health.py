from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import ModelDep, StateDep
from ..schemas import Health, Info, Ready, error_responses

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Health:
    return Health(status="ok")


@router.get("/ready", summary="Readiness: model and gallery loaded", responses=error_responses(503))
async def ready(state: StateDep) -> Ready:
    reason = state.not_ready_reason
    if reason is not None:
        return JSONResponse({"detail": reason}, status_code=503, headers={"Retry-After": "5"})
    return Ready(
        status="ready",
        gallery_size=len(state.gallery),
        dataset=state.dataset_status,
        load_seconds=round(state.load_seconds, 3),
    )


@router.get("/v1/info", summary="The model, its metrics and the gallery", responses=error_responses(503))
async def info(model: ModelDep, state: StateDep) -> Info:
    gallery = state.gallery
    return Info(
        model_name=model.checkpoint.resolve().name,
        checkpoint=str(model.checkpoint),
        checkpoint_sha256=model.sha256,
        architecture=model.config["model"],
        classes=model.classes,
        embedding_dim=model.dim,
        gallery_size=len(gallery) if gallery else 0,
        dataset=state.dataset_status,
        dataset_loaded=state.dataset_loaded,
        metrics=model.metrics,
        search="exact" if gallery is None or len(gallery) <= gallery.index.exact_max else "faiss-ivf",
    )
