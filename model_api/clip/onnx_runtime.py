"""What both towers' ONNX Runtime paths share (`onnx_text`, `onnx_image`): a key naming the
weights a graph was exported from, a quiet export, and sessions set up for a server
whose requests run in parallel.

Each path exports its graph from the PyTorch tower the first time those weights are served and
keeps it on disk under their key, so later starts load it in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import onnxruntime
from torch import nn


def weights_key(module: nn.Module, graph: str) -> str:
    """16 hex digits naming `module`'s weights and `graph`, what the exported graph computes with
    them: changing either exports again."""
    digest = hashlib.sha256(graph.encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy())
    return digest.hexdigest()[:16]


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporter's libraries log every graph rewrite at INFO and warn about their own
    deprecations; the export runs once, at start-up, and the service's log need show none of it."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def open_session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    # Requests run in parallel in the server's threads, so each run gets `threads` of its own.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle workers that spin take the CPU from the other request threads (as OpenBLAS's did;
    # BENCHMARKS.md, model API).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
