"""`make run` with two API replicas on one PostgreSQL gallery, behind Nginx: requests are balanced
over both, and killing one under load loses no search (Nginx repeats it on the other), while a
gallery add is never repeated by Nginx."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import png_bytes, synthetic_image
from tests.stack import API_KEY, WebStack, free_port


def replica_pid(port: str) -> int:
    """The API process serving this port (the launcher's child)."""
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"model_api" in command and b"--port" in command and command[command.index(b"--port") + 1] == port.encode():
            return int(proc.name)
    raise LookupError(f"no API process on port {port}")


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory, tiny_checkpoint, tiny_data_dir):
    """Without CLIP_DATABASE_URL the launcher starts a PostgreSQL of its own, as `make run` does;
    its data under /tmp, where the `postgres` account can reach it when the tests run as root."""
    tmp = tmp_path_factory.mktemp("replicas")
    postgres_dir = Path(tempfile.mkdtemp(prefix="clip-launcher-postgres-"))
    postgres_port = free_port()
    # A generous rate limit: the load below is one client sending as fast as it can.
    stack = WebStack.start(
        tmp,
        tiny_checkpoint,
        tiny_data_dir,
        CLIP_API_REPLICAS="2",
        POSTGRES_DIR=str(postgres_dir),
        POSTGRES_PORT=str(postgres_port),
        API_RATE_LIMIT="1000r/s",
        API_RATE_BURST="1000",
    )
    yield stack, tmp
    assert stack.stop() == 0
    # The launcher stopped its PostgreSQL too.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", postgres_port)) != 0
    shutil.rmtree(postgres_dir, ignore_errors=True)


def search(url: str) -> int:
    response = httpx.post(url + "/api/v1/search/text", json={"query": "a photo of a cat", "top_k": 3}, timeout=30)
    return response.status_code


def test_one_replica_killed_under_load_loses_no_search(two_replicas):
    stack, tmp = two_replicas
    upstream = (stack.run_dir / "default.conf").read_text()
    api_port = stack.api_url.rsplit(":", 1)[1]
    second_port = str(int(api_port) + 1)
    assert f"server 127.0.0.1:{api_port};" in upstream and f"server 127.0.0.1:{second_port};" in upstream

    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            statuses.append(search(stack.url))

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(load)
        time.sleep(2)
        served_before = len(statuses)
        # Frozen first, so that searches are surely in flight on it (sent, unanswered) when it dies:
        # those are the ones Nginx must send again to the other replica.
        doomed = replica_pid(second_port)
        os.kill(doomed, signal.SIGSTOP)
        time.sleep(1)
        stuck = len(statuses)
        os.kill(doomed, signal.SIGKILL)
        time.sleep(3)
        stop.set()
    assert served_before > 10 and len(statuses) > stuck + 10
    assert set(statuses) == {200}, {code: statuses.count(code) for code in set(statuses)}
    # Both replicas had served searches before one died.
    for log in ("api.log", "api-2.log"):
        assert "/v1/search/text" in (stack.run_dir / log).read_text(), log
    # The launcher said so, and kept the rest running; it had started the replicas' PostgreSQL.
    printed = (tmp / "launcher.log").read_text()
    assert "warning: api-2 exited" in printed and "PostgreSQL on 127.0.0.1:" in printed
    assert stack.process.poll() is None


def test_only_requests_that_change_nothing_are_repeated_on_another_replica(two_replicas):
    stack, _ = two_replicas
    site = (stack.run_dir / "default.conf").read_text()
    repeating = re.findall(r"location (\S+) \{[^{}]*proxy_next_upstream error timeout non_idempotent;", site)
    assert repeating == ["/api/v1/search/", "/api/v1/classify"]
    assert site.count("non_idempotent") == 2  # never for /api/ as a whole: a gallery add is a POST there


def test_a_client_retrying_an_add_with_an_idempotency_key_stores_it_once(two_replicas):
    stack, _ = two_replicas
    png = png_bytes(synthetic_image(3, np.random.default_rng(9)))
    headers = {"X-API-Key": API_KEY, "Idempotency-Key": "nginx-add"}
    first, again = (
        httpx.post(stack.url + "/api/v1/gallery", files={"file": ("a.png", png)}, headers=headers, timeout=30)
        for _ in range(2)
    )
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    listed = httpx.get(stack.url + "/api/v1/gallery", params={"source": "user"}, timeout=30).json()
    assert listed["total"] == 1
