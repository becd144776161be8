"""`python -m model_api` serves over real HTTP with uvicorn on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_uvicorn_serves_the_api(tiny_checkpoint, tiny_data_dir, tmp_path, test_png):
    port = free_port()
    env = {
        **os.environ,
        "CLIP_CHECKPOINT": str(tiny_checkpoint),
        "CIFAR10_DATA": str(tiny_data_dir),
        "CLIP_STORE_DIR": str(tmp_path / "store"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),  # the repo, whether installed or not
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "model_api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    if http.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass  # not listening yet
                time.sleep(0.2)
            assert http.get("/health").json() == {"status": "ok"}
            results = http.post("/v1/search/text", json={"query": "a truck", "top_k": 3}).json()["results"]
            assert len(results) == 3
            response = http.post("/v1/classify", files={"file": ("x.png", test_png, "image/png")})
            assert response.status_code == 200
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught (exit status -15).
    assert "Application shutdown complete" in output, output
    assert '"route": "/v1/search/text"' in output and '"latency_ms"' in output  # the JSON access log
