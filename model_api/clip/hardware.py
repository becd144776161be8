"""What this CPU computes fast: decides whether bfloat16 autocast pays.

bfloat16 autocast doubled image throughput on a CPU whose oneDNN has bf16 kernels (AVX-512 or
AMX), and cut it several times over on an AVX2-only CPU where bf16 is emulated (BENCHMARKS.md,
inference speed). So bf16 is used only where it is native.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def bf16_is_fast() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
