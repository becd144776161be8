"""The running app for the UI, Nginx and browser tests: scripts/run_local.py itself, started as
`make run` starts it, on free loopback ports with the tiny checkpoint and tiny dataset.

One stack serves the whole session however many test folders ask for it: the `web_stack`
fixture keeps it on the pytest config, and each folder's conftest re-exports the fixture.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key"
# Small, so the 413 test needs no large upload; a 32x32 PNG is ~3 KB.
MAX_UPLOAD_BYTES = 200_000
RATE_LIMIT, RATE_BURST = "20r/s", 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class WebStack:
    process: subprocess.Popen
    run_dir: Path
    url: str  # Nginx: what a browser opens
    api_url: str  # the API itself, as the UI reaches it

    @classmethod
    def start(
        cls, tmp: Path, checkpoint: Path, data_dir: Path | None, timeout_s: float = 240, **settings: str
    ) -> WebStack:
        """`settings`: more environment for the launcher (CLIP_API_REPLICAS=..., ...), over the defaults."""
        # CLIP_PORT is the API's own setting, which the launcher reads through Settings.
        ports = {name: free_port() for name in ("CLIP_PORT", "UI_PORT", "NGINX_PORT")}
        env = {
            **os.environ,
            **{name: str(port) for name, port in ports.items()},
            "BIND_HOST": "127.0.0.1",
            "RUN_DIR": str(tmp / "run"),
            "CLIP_CHECKPOINT": str(checkpoint),
            "CLIP_STORE_DIR": str(tmp / "store"),
            "CLIP_API_KEY": API_KEY,
            "CLIP_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
            "API_RATE_LIMIT": RATE_LIMIT,
            "API_RATE_BURST": str(RATE_BURST),
            "READY_TIMEOUT_S": str(timeout_s),
            **settings,
        }
        # Without data: a path that does not exist, and the API must start anyway with uploads only.
        env["CIFAR10_DATA"] = str(data_dir or tmp / "no-such-dataset")
        log = open(tmp / "launcher.log", "w")  # the launcher process keeps it open
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "run_local.py")], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        stack = cls(
            process, tmp / "run", f"http://127.0.0.1:{ports['NGINX_PORT']}", f"http://127.0.0.1:{ports['CLIP_PORT']}"
        )
        stack.wait_ready(tmp / "launcher.log", timeout_s)
        return stack

    def wait_ready(self, log: Path, timeout_s: float) -> None:
        """Until the launcher prints its URL, i.e. API and UI answer through Nginx."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "Ready: open" in log.read_text():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"launcher exited {self.process.returncode}:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"stack not ready in {timeout_s} s:\n{log.read_text()[-3000:]}")

    def stop(self) -> int:
        """Ctrl-C, as a person would; returns the launcher's exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)


_STACK = pytest.StashKey[WebStack]()


@pytest.fixture(scope="session")
def web_stack(request: pytest.FixtureRequest, tiny_checkpoint: Path, tiny_data_dir: Path, tmp_path_factory) -> WebStack:
    stash = request.config.stash
    if _STACK not in stash:
        stash[_STACK] = WebStack.start(tmp_path_factory.mktemp("web_stack"), tiny_checkpoint, tiny_data_dir)
        request.config.add_cleanup(stash[_STACK].stop)
    return stash[_STACK]
