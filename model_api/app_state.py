"""What the lifespan loads once and the routes share: the model, the gallery, and their state."""

from __future__ import annotations

import logging
import threading
import time

from .clip.data import DataUnavailableError, load_cifar10
from .gallery import DatasetGallery, Gallery, LoadStopped
from .served_model import ServedModel
from .settings import Settings
from .store import GalleryStore, StoreUnavailableError, open_store

log = logging.getLogger(__name__)

STORE_RETRY_S = 2.0


class NotReadyError(RuntimeError):
    """The model or gallery is still loading, or failed to load."""


class AppState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model: ServedModel | None = None
        self.gallery: Gallery | None = None
        self.dataset_status = "not loaded yet"
        self.dataset_loaded = False
        self.error: str | None = None
        self.load_seconds: float | None = None
        # Set at shutdown: a first start's gallery encoding stops instead of finishing for nobody,
        # and the change feed stops following the store.
        self.stopping = threading.Event()
        self._follower: threading.Thread | None = None

    def load(self) -> None:
        """Model first (classification works from then on), then dataset and gallery.

        Runs in a background thread so /health answers at once; any failure is kept for /ready
        to report instead of killing the process with a traceback nobody polls.
        """
        started = time.perf_counter()
        settings = self.settings
        if not self.writes_enabled:
            log.warning("gallery writes are disabled: the server has no CLIP_API_KEY (uploads and deletes get 403)")
        store = None
        try:
            self.model = ServedModel.load(settings)
            log.info("loaded checkpoint %s (sha256 %s)", settings.checkpoint, self.model.sha256[:12])
            store = self._open_store()
            self.gallery = Gallery.load(
                self.model,
                store,
                self._load_dataset(),
                settings.store_dir / "embeddings",
                settings.exact_search_max,
                self.stopping,
            )
        except LoadStopped as stopped:
            log.info("loading stopped for shutdown: %s", stopped)
            if store is not None:
                store.close()  # no gallery holds it, so `close` would not
            return
        except Exception as error:  # any failure: reported through /ready and the log
            log.exception("loading failed")
            self.error = f"{type(error).__name__}: {error}"
            return
        self.load_seconds = time.perf_counter() - started
        # Other replicas' writes (and ours, should a catch-up after a write have failed) come in here.
        self._follower = threading.Thread(
            target=self.gallery.follow, args=(self.stopping,), name="gallery-changes", daemon=True
        )
        self._follower.start()
        log.info("ready in %.1f s: gallery of %d items (%s)", self.load_seconds, len(self.gallery), self.dataset_status)
        if len(self.gallery) == 0:
            log.warning("the gallery is empty (dataset %s): searches find nothing", self.dataset_status)

    def _open_store(self) -> GalleryStore:
        """The store, waiting for a database that is not up yet (a replica started beside it)."""
        while True:
            try:
                return open_store(self.settings)
            except StoreUnavailableError as error:
                log.warning("%s; trying again in %.0f s", error, STORE_RETRY_S)
                if self.stopping.wait(STORE_RETRY_S):
                    raise LoadStopped("stopped while waiting for the gallery database") from error

    def _load_dataset(self) -> DatasetGallery | None:
        if not self.settings.dataset_gallery:
            self.dataset_status = "disabled by CLIP_DATASET_GALLERY"
            return None
        try:
            data = load_cifar10(self.settings.data_source, self.settings.cache_dir)
        except DataUnavailableError as error:
            # Said once here; clients add what follows from it (the gallery holds uploads only).
            self.dataset_status = f"unavailable: {error}"
            log.warning("%s", self.dataset_status)
            return None
        self.dataset_status = f"loaded {len(data.test)} test images from {data.source}"
        self.dataset_loaded = True
        return DatasetGallery(data.test, data.classes, data.fingerprint)

    @property
    def writes_enabled(self) -> bool:
        """Gallery writes need a key to check against; a blank CLIP_API_KEY is no key."""
        key = self.settings.api_key
        return key is not None and bool(key.get_secret_value())

    @property
    def not_ready_reason(self) -> str | None:
        if self.error is not None:
            return f"loading failed: {self.error}"
        if self.model is None:
            return "loading the model"
        if self.gallery is None:
            return "model loaded; loading the gallery"
        return None

    def require_model(self) -> ServedModel:
        if self.model is None:
            raise NotReadyError(self.not_ready_reason)
        return self.model

    def require_gallery(self) -> Gallery:
        if self.gallery is None:
            raise NotReadyError(self.not_ready_reason)
        return self.gallery

    def close(self) -> None:
        """Stops the change feed (it wakes within a second), then closes the store."""
        self.stopping.set()
        if self._follower is not None:
            self._follower.join()
        if self.gallery is not None:
            self.gallery.store.close()
        if self.model is not None:
            self.model.close()
