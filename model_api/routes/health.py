from __future__ import annotations

from fastapi import APIRouter

from ..app_state import NotReadyError
from ..deps import ModelDep, StateDep
from ..schemas import Health, Info, Ready, error_responses
from ..uploads import IMAGE_EXTENSIONS

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Health:
    return Health(status="ok")


@router.get("/ready", summary="Readiness: model and gallery loaded", responses=error_responses(503))
async def ready(state: StateDep) -> Ready:
    reason = state.not_ready_reason
    if reason is not None:
        # The error table in errors.py gives it the same 503 and Retry-After as any route.
        raise NotReadyError(reason)
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
        writes_enabled=state.writes_enabled,
        image_types=IMAGE_EXTENSIONS,
    )
