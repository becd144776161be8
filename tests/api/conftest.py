"""Fixtures for the API: settings on the tiny checkpoint and data, and ready TestClients."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from model_api.app import create_app
from model_api.clip.preprocess import tensor_to_image
from model_api.settings import Settings

API_KEY = "test-key"
MAX_UPLOAD_BYTES = 300_000


def build_settings(checkpoint: Path, data_dir: Path | None, store_dir: Path, **overrides) -> Settings:
    defaults = {"api_key": API_KEY, "max_upload_bytes": MAX_UPLOAD_BYTES, "max_batch_files": 4}
    data = {"data_source": str(data_dir)} if data_dir else {"dataset_gallery": False}
    return Settings(
        _env_file=None,
        checkpoint=checkpoint,
        **data,
        store_dir=store_dir,
        **{**defaults, **overrides},
    )


def wait_ready(client: TestClient, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/ready")
        if response.status_code == 200:
            return response.json()
        assert "failed" not in response.json()["detail"], response.json()
        time.sleep(0.05)
    raise TimeoutError("the API did not become ready")


@pytest.fixture
def make_settings(tiny_checkpoint: Path, tiny_data_dir: Path, tmp_path: Path):
    """make_settings(**overrides): tiny checkpoint and data, a store in this test's tmp_path."""

    def make(**overrides) -> Settings:
        arguments = {"checkpoint": tiny_checkpoint, "data_dir": tiny_data_dir, "store_dir": tmp_path / "store"}
        return build_settings(**{**arguments, **overrides})

    return make


@pytest.fixture
def serve() -> Iterator:
    """serve(settings) -> a ready TestClient; each is shut down (lifespan end) after the test."""
    clients = []

    def start(settings: Settings) -> TestClient:
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        wait_ready(client)
        return client

    yield start
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def client(
    tiny_checkpoint: Path, tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """One ready API per test module, on a fresh store: tests that add items clean up after."""
    settings = build_settings(tiny_checkpoint, tiny_data_dir, tmp_path_factory.mktemp("store"))
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def encode(image: torch.Tensor, format: str = "PNG", size: tuple[int, int] | None = None, mode: str = "RGB") -> bytes:
    """(3, H, W) uint8 -> file bytes in the given format, optionally resized and converted."""
    picture = tensor_to_image(image)
    if size is not None:
        picture = picture.resize(size)
    buffer = io.BytesIO()
    picture.convert(mode).save(buffer, format=format)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def test_png(tiny_data) -> bytes:
    return encode(tiny_data.test.images[0])


@pytest.fixture(scope="module")
def openapi_schema(client: TestClient):
    """The running test app's spec; schemathesis calls the app in-process through ASGI."""
    import schemathesis

    return schemathesis.openapi.from_asgi("/openapi.json", client.app)
