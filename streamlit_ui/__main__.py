"""`python -m streamlit_ui [streamlit run options]`: start the UI with its upload limit taken from the API's.

The one upload limit is the API's `max_upload_bytes` setting, CLIP_MAX_UPLOAD_BYTES; Nginx takes
it as it is, and this launcher turns it into Streamlit's `server.maxUploadSize`, whole MiB, so the
upload widget never promises a file the API would refuse. Both deployments start the UI through
here (the Dockerfile's ui CMD and scripts/run_local.py). Other options pass through to
`streamlit run`, e.g. `--server.address 0.0.0.0 --server.port 8501`; Streamlit reads the same from
STREAMLIT_SERVER_ADDRESS and STREAMLIT_SERVER_PORT, which is how the ui image sets them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# Must equal the default of model_api.settings.Settings.max_upload_bytes (tests/deploy checks it):
# this package cannot import model_api, because the ui image has no torch.
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
APP = Path(__file__).resolve().parent / "app.py"


def upload_mib(max_upload_bytes: int) -> int:
    """Rounded down, so Streamlit allows no more than the API; at least 1, Streamlit's smallest."""
    return max(1, max_upload_bytes // 2**20)


def command(env: Mapping[str, str], options: Sequence[str] = ()) -> list[str]:
    max_upload_bytes = int(env.get("CLIP_MAX_UPLOAD_BYTES") or DEFAULT_MAX_UPLOAD_BYTES)
    limit = ["--server.maxUploadSize", str(upload_mib(max_upload_bytes))]
    return [sys.executable, "-m", "streamlit", "run", str(APP), *limit, *options]


def main() -> None:
    if any(option.startswith("--server.maxUploadSize") for option in sys.argv[1:]):
        sys.exit("error: the upload limit comes from the API's CLIP_MAX_UPLOAD_BYTES, not --server.maxUploadSize")
    try:
        argv = command(os.environ, sys.argv[1:])
    except ValueError:
        value = os.environ["CLIP_MAX_UPLOAD_BYTES"]
        sys.exit(f"error: CLIP_MAX_UPLOAD_BYTES must be a whole number of bytes, not {value!r}")
    # exec, not a child: signals from Compose or the local launcher reach Streamlit itself.
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
