"""Files land whole, even when replicas starting on one cache write the same file at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from model_api.clip.files import write_atomically, write_text_atomically


def slow_writer(content: bytes):
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as file:
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
            write_atomically(path, slow_writer(content))
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

    def fails(tmp: Path) -> None:
        tmp.write_bytes(b"half a gra")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fails)
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_name_keeps_the_suffix_writers_read_the_format_from(tmp_path: Path) -> None:
    """numpy appends .npy to a name without it, and matplotlib picks the format from it."""
    seen = []
    write_atomically(tmp_path / "vectors.npy", lambda tmp: seen.append(tmp) or tmp.write_bytes(b"x"))
    assert seen[0].suffix == ".npy" and seen[0].parent == tmp_path
    assert write_text_atomically(tmp_path / "meta.json", "{}").read_text() == "{}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["meta.json", "vectors.npy"]
