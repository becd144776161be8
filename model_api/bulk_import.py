"""Bulk import of a folder of images into the gallery's store (`main.py --mode INDEX --folder DIR`).

Writes into the store the API uses (the same `Settings`: `CLIP_DATABASE_URL`, else the SQLite
file in `CLIP_STORE_DIR`), with the checkpoint the API serves (`CLIP_CHECKPOINT`), so the stored
vectors carry the API's `vectors_id` and a running API searches them without re-embedding. Each
image is kept as an upload is (`photos.py`), committed one by one: a file whose bytes an item
already holds (its sha256) is skipped, so an interrupted import run again resumes where it
stopped, and a folder holding one file twice adds it once. Unreadable files are reported and
skipped. A running API learns of the new items from the store's change feed: PostgreSQL notifies
it, and with SQLite it sees another process's commits within a second (`SqliteStore.listen`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .clip.preprocess import InvalidImageError
from .photos import PHOTO_PIXELS, Photo, photo_from_image
from .served_model import ServedModel
from .store import GalleryStore
from .uploads import IMAGE_EXTENSIONS, UnsupportedImageError, open_accepted

# Files read, decoded and embedded together: one forward pass of the image tower per batch.
BATCH = 64


@dataclass
class ImportReport:
    added: int = 0
    skipped: int = 0  # already in the store, or seen earlier in this folder
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def image_files(folder: Path) -> list[Path]:
    """Every file under `folder` whose name ends in an accepted extension, in a stable order."""
    endings = {f".{extension}" for extension in IMAGE_EXTENSIONS}
    return sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in endings)


def import_folder(folder: Path, model: ServedModel, store: GalleryStore, progress: bool = True) -> ImportReport:
    report = ImportReport()
    files = image_files(folder)
    seen: set[str] = set()
    with tqdm(total=len(files), unit="image", disable=not progress) as bar:
        for start in range(0, len(files), BATCH):
            batch = files[start : start + BATCH]
            photos = _new_photos(batch, store, seen, report)
            if photos:
                vectors = model.image_vectors(torch.stack([photo.model_input for photo in photos]))
                for photo, vector in zip(photos, vectors, strict=True):
                    store.add(photo.stored, None, None, {model.vectors_id: vector})
                report.added += len(photos)
            bar.update(len(batch))
            bar.set_postfix(added=report.added, skipped=report.skipped, unreadable=len(report.unreadable))
    return report


def _new_photos(paths: list[Path], store: GalleryStore, seen: set[str], report: ImportReport) -> list[Photo]:
    """The batch's files not in the store yet, decoded; the others counted in `report`."""
    contents = list(_read(paths, report))  # (path, bytes, sha256)
    known = store.known_hashes(sorted({sha256 for _, _, sha256 in contents})) | seen
    photos = []
    for path, data, sha256 in contents:
        if sha256 in known:
            report.skipped += 1
            continue
        known.add(sha256)
        seen.add(sha256)
        try:
            photos.append(photo_from_image(open_accepted(path.name, data, reduce_to=PHOTO_PIXELS), data))
        except (InvalidImageError, UnsupportedImageError) as error:
            _unreadable(report, path, error)
    return photos


def _read(paths: list[Path], report: ImportReport) -> Iterator[tuple[Path, bytes, str]]:
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as error:
            _unreadable(report, path, error)
            continue
        yield path, data, hashlib.sha256(data).hexdigest()


def _unreadable(report: ImportReport, path: Path, error: Exception) -> None:
    report.unreadable.append((path, str(error)))
    tqdm.write(f"skipped {path}: {error}")  # above the progress bar, which goes on
