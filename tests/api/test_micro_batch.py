import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from model_api.micro_batch import MicroBatcher


class GatedEmbedder:
    """texts -> one row per text holding the text's number; the first run waits for `release`, so
    the calls made meanwhile queue up behind it."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.batches.append(list(texts))
        self.started.set()
        self.release.wait(timeout=10)
        if "boom" in texts:
            raise ValueError("cannot embed boom")
        return torch.tensor([[float(text)] for text in texts])


def queued_calls(batcher: MicroBatcher, embedder: GatedEmbedder, calls: list[list[str]]) -> list:
    """Runs calls[0] alone, then calls[1:] while it is held, and returns each call's outcome."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(batcher, calls[0])]
        assert embedder.started.wait(timeout=10)
        futures += [pool.submit(batcher, texts) for texts in calls[1:]]
        while batcher._queue.qsize() < len(calls) - 1:  # every later call is waiting for the worker
            threading.Event().wait(0.01)
        embedder.release.set()
        return [future.exception() or future.result() for future in futures]


def test_calls_waiting_for_the_worker_run_as_one_batch_and_each_gets_its_rows():
    embedder = GatedEmbedder()
    batcher = MicroBatcher(embedder, max_batch=32)
    outcomes = queued_calls(batcher, embedder, [["1"], ["2"], ["3", "4"], ["5"]])
    assert embedder.batches[0] == ["1"]
    assert sorted(embedder.batches[1]) == ["2", "3", "4", "5"]
    assert len(embedder.batches) == 2
    assert [row.flatten().tolist() for row in outcomes] == [[1.0], [2.0], [3.0, 4.0], [5.0]]
    batcher.close()


def test_a_batch_holds_at_most_max_batch_texts():
    embedder = GatedEmbedder()
    batcher = MicroBatcher(embedder, max_batch=2)
    outcomes = queued_calls(batcher, embedder, [["1"], ["2"], ["3"], ["4"], ["5", "6"]])
    assert all(len(batch) <= 2 for batch in embedder.batches)
    assert sorted(text for batch in embedder.batches for text in batch) == ["1", "2", "3", "4", "5", "6"]
    assert [row.flatten().tolist() for row in outcomes] == [[1.0], [2.0], [3.0], [4.0], [5.0, 6.0]]
    batcher.close()


def test_an_error_reaches_every_caller_of_its_batch_and_the_worker_serves_on():
    embedder = GatedEmbedder()
    batcher = MicroBatcher(embedder, max_batch=32)
    outcomes = queued_calls(batcher, embedder, [["1"], ["boom"], ["2"]])
    assert outcomes[0].tolist() == [[1.0]]
    assert all(isinstance(outcome, ValueError) for outcome in outcomes[1:])  # "boom" and "2" shared a batch
    assert batcher(["7"]).tolist() == [[7.0]]
    batcher.close()


def test_close_answers_what_is_queued_and_refuses_later_calls():
    embedder = GatedEmbedder()
    embedder.release.set()
    batcher = MicroBatcher(embedder, max_batch=4)
    assert batcher(["3"]).tolist() == [[3.0]]
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher(["4"])
