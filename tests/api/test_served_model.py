"""The service runs the text tower on the backend its settings name, to the same query vectors,
and PyTorch on as many threads per request as they say."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from model_api.clip import hardware
from model_api.clip.checkpoint import save_checkpoint
from model_api.clip.hardware import DeviceUnavailableError
from model_api.clip.image_encoder import ImageEncoder
from model_api.clip.inference import embed_texts
from model_api.clip.joint import join
from model_api.clip.model import Clip
from model_api.clip.onnx_image import INT8_FILE, OnnxImageTower, quantize
from model_api.clip.onnx_text import OnnxSentenceEncoder
from model_api.clip.text_encoder import FrozenSentenceEncoder
from model_api.served_model import QueryEncoder, ServedModel, image_tower_thread
from tests.api.conftest import build_settings
from tests.conftest import CAPTIONS, TINY_MINILM_MODEL, TINY_MODEL, trained_looking_clip


def served_on_each_runtime(tmp_path, config, setting: str) -> dict[str, ServedModel]:
    """One initialised checkpoint of `config`, served with `setting` (a tower's backend) at onnx and at torch."""
    torch.manual_seed(0)
    save_checkpoint(Clip(config, CAPTIONS), tmp_path / "checkpoint", {})
    return {
        backend: ServedModel.load(
            build_settings(
                tmp_path / "checkpoint", None, tmp_path / "store", cache_dir=tmp_path / "cache", **{setting: backend}
            )
        )
        for backend in ("onnx", "torch")
    }


def test_the_text_backend_setting_picks_the_runtime_and_both_serve_the_same_vectors(tmp_path) -> None:
    served = served_on_each_runtime(tmp_path, TINY_MINILM_MODEL, "text_backend")
    assert isinstance(served["onnx"].model.text.frozen, OnnxSentenceEncoder)
    assert isinstance(served["torch"].model.text.frozen, FrozenSentenceEncoder)
    assert len(list((tmp_path / "cache" / "onnx").glob("sentence-tower-*.onnx"))) == 1  # exported where settings say
    for query in ("a red sports car", "a fluffy dgo"):
        assert np.dot(served["onnx"].text_vector(query), served["torch"].text_vector(query)) >= 0.999


def test_the_image_backend_setting_picks_the_runtime_and_both_classify_alike(monkeypatch, tmp_path) -> None:
    # The graph computes in fp32; PyTorch must too, where the CPU would take bf16 autocast.
    monkeypatch.setattr(hardware, "bf16_is_fast", lambda: False)
    served = served_on_each_runtime(tmp_path, TINY_MODEL, "image_backend")
    assert isinstance(served["onnx"].model.visual, OnnxImageTower)
    assert isinstance(served["torch"].model.visual, ImageEncoder)
    assert len(list((tmp_path / "cache" / "onnx").glob("image-tower-*.onnx"))) == 1  # exported where settings say
    # ONNX Runtime has the tower's threads; PyTorch's one thread there only prepares and projects.
    assert served["onnx"]._image_tower.submit(torch.get_num_threads).result() == 1
    assert served["torch"]._image_tower.submit(torch.get_num_threads).result() == 2
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(served["onnx"].image_vectors(images), served["torch"].image_vectors(images), atol=1e-5)
    onnx, reference = (served[backend].classify(images, ["cat", "truck", "a red car"], 3) for backend in served)
    for fast, slow in zip(onnx, reference, strict=True):
        assert [label for label, _ in fast.ranking] == [label for label, _ in slow.ranking]


def test_a_checkpoint_with_an_int8_tower_is_served_in_int8_and_its_vectors_are_kept_apart(tmp_path) -> None:
    """Served by `auto` on any CPU, bf16 or not: an int8 vector is close to the float one, not
    equal, so the store keeps it under a key of its own."""
    torch.manual_seed(0)
    model = Clip(TINY_MODEL, CAPTIONS)
    save_checkpoint(model, tmp_path / "checkpoint", {})
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    quantize(model.visual.eval(), images, tmp_path / "checkpoint" / INT8_FILE)
    served = {
        backend: ServedModel.load(
            build_settings(tmp_path / "checkpoint", None, tmp_path / "store", image_backend=backend)
        )
        for backend in ("auto", "onnx")
    }
    assert served["auto"].model.visual.int8 and not served["onnx"].model.visual.int8
    assert served["auto"].vectors_id == served["onnx"].vectors_id + "-int8"


def joint_of_two() -> Clip:
    return join([trained_looking_clip(TINY_MINILM_MODEL, seed) for seed in (0, 1)], [0.7, 0.3])


@pytest.mark.parametrize(
    "build",
    [lambda: trained_looking_clip(TINY_MODEL), lambda: trained_looking_clip(TINY_MINILM_MODEL), joint_of_two],
    ids=["scratch tower", "frozen MiniLM", "a joint of two"],
)
def test_queries_embed_through_the_folded_head_as_through_the_model(build) -> None:
    model = build()  # with statistics a trained model would have, so the fold has a standardisation to fold
    texts = ["a red sports car", "a fluffy dgo", "x"]
    torch.testing.assert_close(QueryEncoder(model)(texts), embed_texts(model, texts), atol=1e-5, rtol=0)


def test_clip_device_places_the_model_and_cuda_without_a_gpu_is_refused(tmp_path, monkeypatch) -> None:
    save_checkpoint(Clip(TINY_MODEL, CAPTIONS), tmp_path / "checkpoint", {})
    monkeypatch.setenv("CLIP_DEVICE", "cpu")
    settings = build_settings(tmp_path / "checkpoint", None, tmp_path / "store")
    served = ServedModel.load(settings)
    assert settings.device == "cpu" and served.model.logit_scale.device.type == "cpu"
    assert served.search_device is None  # the gallery searches with numpy
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="sees no GPU"):
            ServedModel.load(build_settings(tmp_path / "checkpoint", None, tmp_path / "store", device="cuda"))


def threads_a_new_thread_gets() -> int:
    """What PyTorch gives a thread started now, as the server's request threads are."""
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_the_service_runs_pytorch_on_the_threads_its_settings_give(make_settings, serve) -> None:
    before = torch.get_num_threads()
    try:
        serve(make_settings(torch_threads=3))
        assert threads_a_new_thread_gets() == 3
        serve(make_settings(torch_threads=1))
        assert threads_a_new_thread_gets() == 1
    finally:
        torch.set_num_threads(before)


def test_the_image_tower_thread_has_its_own_torch_threads_and_leaves_the_others_theirs() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tower = image_tower_thread(2)
    try:
        assert tower.submit(torch.get_num_threads).result() == 2
        assert torch.get_num_threads() == 1
        later: list[int] = []  # a thread started afterwards (a request's) takes the process's count
        started = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        started.start()
        started.join()
        assert later == [1]
    finally:
        tower.shutdown()
        torch.set_num_threads(before)
