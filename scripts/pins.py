"""Prints pyproject.toml's pinned dependencies for `pip install`, so the Dockerfile repeats no version:
`python scripts/pins.py` gives all of them, `python scripts/pins.py streamlit httpx` only those two."""

import re
import sys
import tomllib
from pathlib import Path

dependencies = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]["dependencies"]
wanted = set(sys.argv[1:])
print(" ".join(d for d in dependencies if not wanted or re.split(r"[\[=<>~!]", d)[0] in wanted))
