"""main.py as a user runs it: a subprocess per command, on the tiny checkpoint and data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from model_api.clip.checkpoint import load_checkpoint, weights_sha256

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tiny_data_dir, isolated_cache):
    env = {**os.environ, "CIFAR10_DATA": str(tiny_data_dir), "CLIP_CACHE_DIR": str(isolated_cache)}

    def run_main(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=env, timeout=300
        )

    return run_main


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") and fragment in result.stderr and result.stderr.count("\n") == 1


def test_train_writes_a_checkpoint(run, tmp_path) -> None:
    # The scratch tower keeps this quick; training with the default MiniLM tower is tests/clip/test_train.py's.
    args = ["--mode", "TRAIN", "--epochs", "1", "--batch-size", "64", "--val-size", "40", "--text-encoder", "scratch"]
    captions = ["--captions-per-step", "32", "--attribute-caption-share", "0.8", "--undecided-pairs", "ignored"]
    result = run(*args, *captions, "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "best" / "model.safetensors").exists() and (tmp_path / "last_state.pt").exists()
    recipe = json.loads((tmp_path / "best" / "config.json").read_text())["train"]
    assert (recipe["captions_per_step"], recipe["attribute_caption_share"], recipe["undecided_pairs"]) == (
        32,
        0.8,
        "ignored",
    )
    assert "epoch 1/1" in result.stderr  # the per-epoch log line


def test_torchrun_trains_on_two_processes_and_rank_0_alone_logs_and_writes(
    tiny_data_dir, isolated_cache, tmp_path
) -> None:
    env = {**os.environ, "CIFAR10_DATA": str(tiny_data_dir), "CLIP_CACHE_DIR": str(isolated_cache)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    args = ["--mode", "TRAIN", "--epochs", "1", "--batch-size", "64", "--val-size", "40", "--text-encoder", "scratch"]
    command = [*torchrun, str(ROOT / "main.py"), *args, "--device", "cpu", "--output", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("epoch 1/1 loss") == 1 and result.stdout.count("best validation accuracy") == 1
    _, config = load_checkpoint(tmp_path / "best")
    assert config["trained_on"]["processes"] == 2


def test_cuda_without_a_gpu_is_a_one_line_error(run, tiny_checkpoint) -> None:
    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU")
    assert_one_line_error(run("--checkpoint", str(tiny_checkpoint), "--device", "cuda"), "sees no GPU")


def test_test_mode_prints_and_writes_the_report(run, tiny_checkpoint, tmp_path) -> None:
    report = tmp_path / "report.json"
    result = run("--mode", "TEST", "--checkpoint", str(tiny_checkpoint), "--report", str(report))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(report.read_text())
    assert metrics["images"] == 50 and 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["single_view"]["accuracy"] <= 1
    assert set(metrics["retrieval"]) == {"precision_at_10", "precision_at_100", "mean_average_precision"}
    assert len(metrics["confusion_matrix"]) == 10 and metrics["images_per_s"] > 0
    assert metrics["checkpoint_sha256"] == weights_sha256(tiny_checkpoint)
    assert "accuracy" in result.stdout and "confusion matrix" in result.stdout
    assert (tmp_path / "report_confusion.png").stat().st_size > 1000


def test_inference_on_a_test_index_ranks_the_classes(run, tiny_checkpoint) -> None:
    result = run("--checkpoint", str(tiny_checkpoint), "--idx", "3", "--topk", "3")
    assert result.returncode == 0, result.stderr
    description, *lines = result.stdout.strip().splitlines()
    assert description.startswith("test image 3 (labelled ")
    assert len(lines) == 3 and lines[0].startswith("1. ")
    scores = [float(line.split()[-1]) for line in lines]
    assert scores == sorted(scores, reverse=True)


def test_inference_on_a_file_with_custom_labels_saves_a_chart(run, tiny_checkpoint, tmp_path) -> None:
    from PIL import Image

    image = tmp_path / "photo.jpg"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(image)
    chart = tmp_path / "chart.png"
    result = run(
        "--checkpoint",
        str(tiny_checkpoint),
        "--image",
        str(image),
        "--labels",
        "red thing, blue thing,",
        "--save",
        str(chart),
    )
    assert result.returncode == 0, result.stderr
    description, *lines = result.stdout.splitlines()
    assert description == str(image)
    labels = {line.split()[1] + " " + line.split()[2] for line in lines[:2]}
    assert labels == {"red thing", "blue thing"}
    assert chart.stat().st_size > 1000


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--image", "/no/such/file.png"], "cannot read"),
        (["--idx", "50"], "out of range"),
        (["--idx", "-1"], "out of range"),
        (["--labels", " , ,"], "empty"),
        (["--topk", "0"], "topk"),
    ],
)
def test_bad_inference_input_is_a_one_line_error(run, tiny_checkpoint, args, fragment) -> None:
    assert_one_line_error(run("--checkpoint", str(tiny_checkpoint), *args), fragment)


def test_a_file_that_is_not_an_image_is_a_one_line_error(run, tiny_checkpoint, tmp_path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("hello")
    assert_one_line_error(run("--checkpoint", str(tiny_checkpoint), "--image", str(text)), "not a readable image")


def test_unreadable_checkpoint_is_a_one_line_error(run, tmp_path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    assert_one_line_error(run("--checkpoint", str(tmp_path), "--idx", "0"), "unreadable")
    assert_one_line_error(run("--mode", "TEST", "--checkpoint", str(tmp_path / "absent")), "no checkpoint")


def test_unreachable_dataset_is_a_one_line_error(run, tiny_checkpoint, tmp_path) -> None:
    result = run("--checkpoint", str(tiny_checkpoint), "--data", str(tmp_path / "no_dataset_here"))
    assert_one_line_error(result, "could not load CIFAR-10")


def test_training_the_pretrained_tower_without_its_files_is_a_one_line_error(
    tiny_data_dir, tmp_path, monkeypatch, capsys
) -> None:
    """main.py reads CLIP_TEXT_ENCODER_PATH (the library does not) and passes it on."""
    import main

    monkeypatch.setenv("CLIP_TEXT_ENCODER_PATH", str(tmp_path / "no-model"))
    args = ["--mode", "TRAIN", "--text-encoder", "minilm", "--data", str(tiny_data_dir), "--val-size", "40"]
    assert main.main([*args, "--output", str(tmp_path / "run")]) == 2
    stderr = capsys.readouterr().err  # log lines of the data loading come first
    last = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr and last.startswith("error:")
    assert f"{tmp_path / 'no-model'} is not a directory" in last


def test_index_adds_a_folder_to_the_apis_store_and_a_second_run_skips_it(tiny_checkpoint, tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(3):
        Image.new("RGB", (300, 200), (seed * 80, 40, 200)).save(folder / f"{seed}.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    env = {**os.environ, "CLIP_STORE_DIR": str(tmp_path / "store"), "CLIP_CHECKPOINT": str(tiny_checkpoint)}
    env.pop("CLIP_DATABASE_URL", None)
    command = [sys.executable, str(ROOT / "main.py"), "--mode", "INDEX", "--folder", str(folder)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "added 3, skipped 0 already stored, 1 unreadable" in first.stdout
    assert "unreadable: " in first.stdout and "broken.png" in first.stdout
    assert "image/s" in first.stderr  # the progress bar
    second = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert "added 0, skipped 3 already stored, 1 unreadable" in second.stdout
    missing = subprocess.run([*command[:-1], str(tmp_path / "nowhere")], capture_output=True, text=True, env=env)
    assert_one_line_error(missing, "--folder")


def test_join_writes_one_checkpoint_that_test_mode_scores(run, tiny_checkpoint, tmp_path) -> None:
    from model_api.clip.checkpoint import save_checkpoint
    from tests.conftest import TINY_MINILM_MODEL, trained_looking_clip

    members = [tmp_path / "first", tmp_path / "second"]
    for seed, member in enumerate(members):
        metadata = {"train": {"val_size": 40}, "metrics": {"val_accuracy": 0.5}}
        save_checkpoint(trained_looking_clip(TINY_MINILM_MODEL, seed), member, metadata)
    joined = tmp_path / "joint"
    args = ["--mode", "JOIN", "--members", *map(str, members), "--member-weights", "2", "1", "--output", str(joined)]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    model, config = load_checkpoint(joined)
    assert model.config.member_weights == pytest.approx((2 / 3, 1 / 3))
    assert [member["sha256"] for member in config["joined_from"]] == [weights_sha256(member) for member in members]
    assert run("--mode", "TEST", "--checkpoint", str(joined)).returncode == 0
    trained_alone = ["--mode", "JOIN", "--members", str(tiny_checkpoint), str(members[0]), "--output", str(joined)]
    assert_one_line_error(run(*trained_alone), "sentence encoder")  # the tiny checkpoint's text tower is scratch
