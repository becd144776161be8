"""Training on two gloo processes, as torchrun runs it, on the tiny dataset."""

import hashlib
import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from model_api.clip import distributed, train
from model_api.clip.checkpoint import load_checkpoint
from model_api.clip.data import load_cifar10
from model_api.clip.distributed import Ranks, gather
from model_api.clip.loss import LabelAwareContrastiveLoss, label_positives
from model_api.clip.train import STATE_FILE, ShardTooSmallError, Trainer
from tests.conftest import CAPTIONS, TINY_DEVICE, TINY_MODEL, TINY_RECIPE

RECIPE = replace(TINY_RECIPE, epochs=3, attribute_caption_share=0.5)


def digest(trainer: Trainer) -> str:
    """One hash of the weights, BatchNorm statistics and weight average."""
    hasher = hashlib.sha256()
    for tensors in (trainer.model.state_dict(), trainer.averager.average):
        for name, tensor in sorted(tensors.items()):
            hasher.update(name.encode())
            hasher.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


class RecordingTrainer(Trainer):
    """A Trainer that notes the digest of its state after every step."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.digests: list[str] = []

    def train_step(self, *args) -> float:
        loss = super().train_step(*args)
        self.digests.append(digest(self))
        return loss


class Interrupted(Exception):
    """Stands for a run killed during its third epoch."""


class InterruptedTrainer(Trainer):
    def run_epoch(self) -> dict[str, float]:
        if self.epoch == 2:
            raise Interrupted
        return super().run_epoch()


class Towers(torch.nn.Module):
    """Two linear towers and a temperature: the parameters a contrastive step reaches."""

    def __init__(self) -> None:
        super().__init__()
        self.image, self.text = torch.nn.Linear(6, 4), torch.nn.Linear(5, 4)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        normalize = torch.nn.functional.normalize
        return normalize(self.image(images), dim=-1), normalize(self.text(texts), dim=-1), self.logit_scale.exp()


def gradient_gap(ranks: Ranks) -> float:
    """Largest difference between the gradients DDP leaves on this process (shards, gathered
    embeddings) and those of one process computing the same loss on the whole batch."""
    torch.manual_seed(0)
    images, texts, labels = torch.randn(9, 6), torch.randn(7, 5), torch.randint(0, 3, (9,))
    loss_fn, whole = LabelAwareContrastiveLoss(0.2), Towers()
    loss_fn(*whole(images, texts), label_positives(labels, labels[:7])).backward()
    sharded = Towers()
    sharded.load_state_dict(whole.state_dict())
    network = torch.nn.parallel.DistributedDataParallel(sharded)
    image_emb, text_emb, scale = network(ranks.shard(images), ranks.shard(texts))
    rows, text_rows = ranks.gathered_order(9), ranks.gathered_order(7)
    positives = label_positives(labels[rows], labels[:7][text_rows])
    loss_fn(gather(image_emb, ranks, 9), gather(text_emb, ranks, 7), scale, positives).backward()
    pairs = zip(whole.parameters(), sharded.parameters(), strict=True)
    return max((reference.grad - got.grad).abs().max().item() for reference, got in pairs)


def train_on_rank(rank: int, world_size: int, port: int, data_dir: str, cache: str, root: str) -> None:
    """One process of the run: an uninterrupted run, and one killed after epoch 2 and resumed."""
    torch.set_num_threads(1)  # two processes share the machine's cores, as torchrun's OMP_NUM_THREADS=1 makes them
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # what torchrun sets for env://
    ranks = distributed.start(TINY_DEVICE, rank, world_size)
    root_path = Path(root)
    saves: list[str] = []
    write_checkpoint = train.save_checkpoint

    def noted_checkpoint(model, directory: Path, metadata: dict) -> None:
        saves.append(str(directory))
        write_checkpoint(model, directory, metadata)

    train.save_checkpoint = noted_checkpoint  # this process's writes are noted, then done
    try:
        gap = gradient_gap(ranks)
        data = load_cifar10(data_dir, Path(cache))
        whole = RecordingTrainer(
            data, TINY_MODEL, RECIPE, root_path / "whole", CAPTIONS, device=TINY_DEVICE, ranks=ranks
        )
        whole.fit()
        cut = InterruptedTrainer(data, TINY_MODEL, RECIPE, root_path / "cut", CAPTIONS, device=TINY_DEVICE, ranks=ranks)
        try:
            cut.fit()
        except Interrupted:
            pass
        resumed = Trainer(data, TINY_MODEL, RECIPE, root_path / "cut", CAPTIONS, device=TINY_DEVICE, ranks=ranks)
        resumed.resume()
        resumed_at = resumed.epoch
        resumed.fit()
    finally:
        distributed.stop(ranks)
    result = {
        "gradient_gap": gap,
        "digests": whole.digests,
        "final": digest(whole),
        "resumed_at": resumed_at,
        "resumed_final": digest(resumed),
        "best_val_accuracy": whole.best_accuracy,
        "checkpoint_writes": saves,
    }
    (root_path / f"rank{rank}.json").write_text(json.dumps(result))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tiny_data, tiny_data_dir, isolated_cache, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    args = (2, free_port(), str(tiny_data_dir), str(isolated_cache), str(root))
    mp.spawn(train_on_rank, args=args, nprocs=2, join=True)
    return root


def rank_results(root: Path) -> list[dict]:
    return [json.loads((root / f"rank{rank}.json").read_text()) for rank in range(2)]


def test_sharded_batches_with_gathered_embeddings_get_the_whole_batch_gradient(two_process_run) -> None:
    for result in rank_results(two_process_run):
        assert result["gradient_gap"] < 1e-5  # float32 rounding: 3.6e-7 measured


def test_every_rank_holds_the_same_weights_after_every_step(two_process_run) -> None:
    first, second = rank_results(two_process_run)
    steps = RECIPE.epochs * 5  # 160 training images in batches of 32
    assert len(first["digests"]) == steps and first["digests"] == second["digests"]
    assert len(set(first["digests"])) == steps  # every step changed something
    assert first["best_val_accuracy"] == second["best_val_accuracy"]  # sharded validation, reduced


def test_two_processes_lower_the_loss_and_rank_0_alone_writes_one_checkpoint(two_process_run) -> None:
    history = json.loads((two_process_run / "whole" / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    first, second = rank_results(two_process_run)
    assert first["checkpoint_writes"] and second["checkpoint_writes"] == []
    written = sorted(
        path.relative_to(two_process_run / "whole").as_posix() for path in (two_process_run / "whole").rglob("*")
    )
    expected = ["best", "best/captions.json", "best/config.json", "best/model.safetensors", "history.json"]
    assert written == sorted([*expected, STATE_FILE, "training_curve.png"])  # and no temporary file left
    model, config = load_checkpoint(two_process_run / "whole" / "best")
    assert config["trained_on"] == {"device": "cpu", "precision": "float32", "processes": 2}


def test_a_two_process_run_resumes_to_the_weights_of_an_uninterrupted_one(two_process_run) -> None:
    for result in rank_results(two_process_run):
        assert result["resumed_at"] == 2 and result["resumed_final"] == result["final"]


def test_batches_are_split_in_interleaved_shards_that_gather_back_in_rank_order() -> None:
    rows = torch.arange(7)
    shards = [Ranks(rank, 3).shard(rows) for rank in range(3)]
    assert [shard.tolist() for shard in shards] == [[0, 3, 6], [1, 4], [2, 5]]
    assert torch.equal(Ranks(0, 3).gathered_order(7), torch.cat(shards))


def test_processes_whose_shards_are_too_small_for_batchnorm_are_refused_before_training(tiny_data, tmp_path) -> None:
    # 160 training images in batches of 32: 20 processes would get one or two images each.
    with pytest.raises(ShardTooSmallError, match="20 processes need at least 40"):
        Trainer(tiny_data, TINY_MODEL, RECIPE, tmp_path, CAPTIONS, device=TINY_DEVICE, ranks=Ranks(0, 20))
