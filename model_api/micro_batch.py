"""Dynamic batching: requests that arrive while a batch runs go through the model together.

MiniLM's forward for one short query costs about twice its per-query cost in a batch of eight
or more (BENCHMARKS.md, first-seen text queries), so under concurrent load one worker thread
that takes everything waiting, runs it as one batch and hands each caller its rows serves
more queries per CPU second. A lone request waits for nobody: the worker starts as soon as
there is work, so batches form only from requests that would have queued anyway.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch


@dataclass
class _Request:
    texts: list[str]
    result: Future[torch.Tensor] = field(default_factory=Future)


# Put on the queue by close(): the worker answers what was queued before it, then exits.
_STOP = _Request([])


class MicroBatcher:
    """Runs `compute` (texts -> (N, D) tensor) on the texts of every waiting call at once, at
    most `max_batch` texts per run, on a thread of its own. Thread-safe."""

    def __init__(self, compute: Callable[[list[str]], torch.Tensor], max_batch: int, name: str = "micro-batcher"):
        self.compute = compute
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._serve, name=name, daemon=True)
        self._worker.start()

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """(N, D) rows for texts, computed in whatever batch they join; `compute`'s error if it raises."""
        return self.submit(texts).result()

    def submit(self, texts: list[str]) -> Future[torch.Tensor]:
        """Queue texts without waiting: the future holds their (N, D) rows, or `compute`'s error,
        once their batch has run. An event loop awaits it (`asyncio.wrap_future`) with no thread blocked."""
        if not self._worker.is_alive():
            raise RuntimeError("the micro-batcher is closed")
        request = _Request(list(texts))
        self._queue.put(request)
        return request.result

    def close(self) -> None:
        """Answer what is queued, then stop the worker."""
        self._queue.put(_STOP)
        self._worker.join()

    def _serve(self) -> None:
        pending: _Request | None = None  # taken from the queue but too large for the last batch
        while True:
            first = pending or self._queue.get()
            if first is _STOP:
                return
            batch, pending = self._gather(first)
            self._run(batch)
            if pending is _STOP:
                return

    def _gather(self, first: _Request) -> tuple[list[_Request], _Request | None]:
        """`first` and every request already waiting, up to max_batch texts; -> (batch, the
        request that did not fit or the stop mark, else None)."""
        batch, size = [first], len(first.texts)
        while size < self.max_batch:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request is _STOP or size + len(request.texts) > self.max_batch:
                return batch, request
            batch.append(request)
            size += len(request.texts)
        return batch, None

    def _run(self, batch: list[_Request]) -> None:
        try:
            rows = self.compute([text for request in batch for text in request.texts])
        except Exception as error:  # every caller of this batch gets the error, and the worker serves on
            for request in batch:
                request.result.set_exception(error)
            return
        start = 0
        for request in batch:
            request.result.set_result(rows[start : start + len(request.texts)])
            start += len(request.texts)
