"""Prints pyproject.toml's pinned requirements for `pip install -r`, one a line, so the Dockerfile
repeats no version. The arguments name the groups: `core` (the library's `dependencies`) and any
extra (`api`, `ui`, `test`):

    python scripts/pins.py core api    # the api image: the library and the HTTP service
    python scripts/pins.py ui          # the ui image: Streamlit and its client, no torch

A package listed in two groups (pillow: core and ui) is printed once; two different pins for it
are an error, so the groups cannot drift apart.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def name(requirement: str) -> str:
    """The distribution a requirement names, normalised as pip does: `uvicorn[standard]==0.54` -> `uvicorn`."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[=<>~!;\s]", requirement, maxsplit=1)[0]).lower()


def groups(pyproject: Path = PYPROJECT) -> dict[str, list[str]]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return {"core": project["dependencies"], **project.get("optional-dependencies", {})}


def pins(wanted: list[str], pyproject: Path = PYPROJECT) -> list[str]:
    known = groups(pyproject)
    if not wanted or set(wanted) - set(known):
        raise SystemExit(f"usage: pins.py GROUP...  (groups: {', '.join(known)})")
    chosen: dict[str, str] = {}
    for group in wanted:
        for requirement in known[group]:
            earlier = chosen.setdefault(name(requirement), requirement)
            if earlier != requirement:
                raise SystemExit(f"pyproject.toml pins {name(requirement)} twice: {earlier} and {requirement}")
    return list(chosen.values())


if __name__ == "__main__":
    print("\n".join(pins(sys.argv[1:])))
