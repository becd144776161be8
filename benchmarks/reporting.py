"""Where every benchmark's figures go: a JSON file that BENCHMARKS.md cites."""

from __future__ import annotations

import json
from pathlib import Path


def save_json(results: dict, path: Path | None) -> None:
    """Write `results` to `path` (nothing when no path was asked for)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
