"""Exports land whole, even when replicas starting on one cache write the same file at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from model_api.clip.onnx_runtime import save_atomically


def slow_writer(content: bytes):
    def save(name: str) -> None:
        with open(name, "wb") as file:
            for start in range(0, len(content), 1000):  # in pieces, so that writers overlap
                file.write(content[start : start + 1000])
                time.sleep(0.001)

    return save


def test_writers_at_once_leave_one_whole_file_and_no_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "tower.onnx"
    contents = [bytes([index]) * 50_000 for index in range(4)]
    errors = []

    def write(content: bytes) -> None:
        try:
            save_atomically(path, slow_writer(content))
        except OSError as error:  # a writer whose file another moved away or truncated
            errors.append(error)

    writers = [threading.Thread(target=write, args=(content,)) for content in contents]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert errors == []
    assert path.read_bytes() in contents
    assert list(path.parent.iterdir()) == [path]


def test_a_failed_save_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tower.onnx"

    def fails(name: str) -> None:
        Path(name).write_bytes(b"half a gra")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_atomically(path, fails)
    assert list(tmp_path.iterdir()) == []
