"""The service's configuration: one pydantic-settings class read from the environment or `.env`."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .clip.data import DEFAULT_CACHE_DIR, HUB_NAME
from .clip.hardware import DeviceName
from .clip.index import EXACT_SEARCH_MAX
from .clip.inference import UNSURE_BELOW
from .clip.onnx_image import ImageBackend
from .clip.onnx_text import TextBackend


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIP_", env_file=".env", extra="ignore", populate_by_name=True)

    checkpoint: Path = Field(Path("checkpoints/clip-cifar10"), description="checkpoint directory")
    # main.py reads CIFAR10_DATA too; accepting it here keeps one variable for both.
    data_source: str = Field(
        HUB_NAME,
        validation_alias=AliasChoices("CLIP_DATA_SOURCE", "CIFAR10_DATA"),
        description="dataset: local copy in the hub's layout, or hub name",
    )
    cache_dir: Path = Field(
        DEFAULT_CACHE_DIR, description="decoded dataset arrays (shared with main.py) and the exported text tower"
    )
    text_encoder_path: Path | None = Field(
        None, description="local copy of the sentence encoder (default: the packaged copy, else the hub)"
    )
    device: DeviceName = Field("auto", description="where the model computes: auto (a GPU if there is one), cpu, cuda")
    dataset_gallery: bool = Field(True, description="put the dataset's test split in the gallery")
    store_dir: Path = Field(Path(".cache/gallery"), description="SQLite gallery and cached embeddings")
    # Unset: the embedded SQLite store in store_dir. Set: every replica with the same URL serves one gallery.
    database_url: SecretStr | None = Field(None, description="postgresql://user:password@host:port/db for the gallery")
    database_pool_size: int = Field(8, ge=1, description="most PostgreSQL connections one API process opens")
    api_key: SecretStr | None = Field(None, description="key for gallery writes; unset refuses writes")
    # The one source for the API's port: `python -m model_api`, the Dockerfile's healthcheck (via
    # the image's CLIP_PORT) and scripts/run_local.py all read it. API_PORT is the launcher's old name.
    port: int = Field(
        8000, ge=1, le=65535, validation_alias=AliasChoices("CLIP_PORT", "API_PORT"), description="TCP port to serve on"
    )
    # The one source for the upload limit: Nginx's client_max_body_size and Streamlit's
    # server.maxUploadSize (streamlit_ui/__main__.py) are derived from CLIP_MAX_UPLOAD_BYTES.
    max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0)
    max_batch_files: int = Field(32, gt=0)
    exact_search_max: int = Field(EXACT_SEARCH_MAX, ge=0, description="above this many vectors, search with FAISS")
    text_cache_size: int = Field(4096, ge=0)
    # onnx-int8: ONNX Runtime with int8 weights and products in blocks of 32 (onnx_text.quantized_graph),
    # about half the fp32 graph's CPU per query; it moves held-out open-vocabulary P@10 by 0.002 and
    # zero-shot accuracy by 0.01 points (BENCHMARKS.md, int8). onnx is the fp32 graph; torch the
    # PyTorch reference both are tested against.
    text_backend: TextBackend = Field(
        "onnx-int8", description="runtime of the frozen MiniLM text tower: onnx-int8, onnx or torch"
    )
    # One thread per text batch: with int8 a second one no longer shortens a lone query, and under
    # 32 clients it cost a quarter of the throughput (263 against 200 searches/s; BENCHMARKS.md).
    text_threads: int = Field(1, ge=1, description="ONNX Runtime threads per text batch")
    # Concurrent first-seen queries run as one batch, at about half the CPU per query (micro_batch.py).
    text_batch_size: int = Field(32, ge=1, description="most first-seen text queries embedded in one forward pass")
    # With two, torch's idle OpenMP worker spun after every small product: the 256-d projection of
    # one query took 16 ms of CPU instead of 0.1 (BENCHMARKS.md, first-seen text queries).
    torch_threads: int = Field(1, ge=1, description="PyTorch intra-op threads per request thread")
    # Every image goes through the tower on one thread of its own with this many torch threads: a
    # lone upload on the wide tower took 10.5-10.8 ms with one and 7.9-8.8 ms with two (BENCHMARKS.md).
    image_threads: int = Field(2, ge=1, description="PyTorch or ONNX Runtime threads of the image tower's thread")
    # auto, on a CPU: the checkpoint's int8 graph of its weights where it has one (an upload in a
    # third of PyTorch's bf16 time, a third less than the float graph's fp32 time); else the
    # float graph where the CPU computes in fp32, PyTorch where it has native bf16. GPUs: PyTorch
    # (`onnx_image.use_image_backend`).
    image_backend: ImageBackend = Field(
        "auto", description="runtime of the image tower: auto, onnx, onnx-int8 (the checkpoint's int8 graph) or torch"
    )
    # About one test image in ten is under the default, and is classified from six views instead
    # of two (BENCHMARKS.md, six views for the unsure; class prompts from the class's words).
    unsure_below: float = Field(
        UNSURE_BELOW, ge=0, le=1, description="top probability under which classification adds shifted views; 0: never"
    )
    # Requests already run in parallel in the server's thread pool; a multi-threaded BLAS per
    # request made the threads spin against each other (BENCHMARKS.md, model API).
    blas_threads: int = Field(1, ge=1, description="BLAS threads per exact-search matrix product")
    log_level: str = "INFO"

    @property
    def onnx_dir(self) -> Path:
        """Where the towers' exported ONNX graphs are cached (the int8 image graph lives beside the weights)."""
        return self.cache_dir / "onnx"
