"""`python -m streamlit_ui`: the one place Streamlit's upload limit is derived from the API's."""

import subprocess
import sys
import time
from pathlib import Path

import httpx

from model_api.settings import Settings
from streamlit_ui.__main__ import DEFAULT_MAX_UPLOAD_BYTES, command, upload_mib
from tests.stack import ROOT, free_port

MIB = 2**20


def test_default_limit_is_the_apis():
    # The UI package cannot import model_api (its image has no torch), so it keeps its own copy.
    assert DEFAULT_MAX_UPLOAD_BYTES == Settings.model_fields["max_upload_bytes"].default


def test_limit_is_rounded_down_to_whole_mib_and_at_least_one():
    assert upload_mib(10 * MIB) == 10
    assert upload_mib(10 * MIB + 1) == 10
    assert upload_mib(3 * MIB - 1) == 2
    assert upload_mib(200_000) == 1


def test_command_takes_the_limit_from_the_environment_and_passes_options_on():
    argv = command({"CLIP_MAX_UPLOAD_BYTES": str(5 * MIB)}, ["--server.port", "9999"])
    assert argv[1:4] == ["-m", "streamlit", "run"] and Path(argv[4]) == ROOT / "streamlit_ui" / "app.py"
    assert argv[5:] == ["--server.maxUploadSize", "5", "--server.port", "9999"]
    assert command({})[5:7] == ["--server.maxUploadSize", str(DEFAULT_MAX_UPLOAD_BYTES // MIB)]


def test_a_second_limit_on_the_command_line_is_refused():
    started = subprocess.run(
        [sys.executable, "-m", "streamlit_ui", "--server.maxUploadSize", "50"], cwd=ROOT, capture_output=True, text=True
    )
    assert started.returncode != 0 and "CLIP_MAX_UPLOAD_BYTES" in started.stderr


def test_starts_streamlit_as_the_ui_image_does(tmp_path):
    """Port and address from Streamlit's own variables (the Dockerfile's ENV), the limit from ours."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "STREAMLIT_SERVER_ADDRESS": "127.0.0.1",
        "STREAMLIT_SERVER_PORT": str(port),
        "CLIP_MAX_UPLOAD_BYTES": str(3 * MIB + 5),
    }
    process = subprocess.Popen([sys.executable, "-m", "streamlit_ui"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError(f"Streamlit did not answer on {port} (exit code {process.poll()})")
        # exec'd: the launcher's process is Streamlit itself, with the derived limit.
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert [b"--server.maxUploadSize", b"3"] == cmdline[cmdline.index(b"--server.maxUploadSize") :][:2]
    finally:
        process.terminate()
        process.wait(20)
