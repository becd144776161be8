"""Files written so that no reader, and no crash, ever sees half of one: checkpoints, training
state, caches of decoded data and embeddings, exported graphs and plots all go through here."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, save: Callable[[Path], object]) -> Path:
    """`save(tmp)` writes the file under a temporary name beside `path`; it is then flushed to disk
    and renamed over `path`, so a crash leaves the old file or none, never a torn one. -> path

    The temporary name is this process's and thread's own, so that API replicas starting
    together on one cache never write into each other's file, and it keeps the suffix, from
    which numpy and matplotlib take the format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        save(tmp)
        descriptor = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_text(text))
