"""Byte-level tokenizer for the from-scratch text tower.

Why bytes and not a BPE vocabulary: there is no vocabulary file to ship or version, every
string a user types (unicode, misspellings, unknown words) encodes without an unknown token,
and CIFAR captions are short enough that one token per UTF-8 byte stays well inside the
context window.
"""

from __future__ import annotations

import torch

PAD, BOS, EOS = 0, 1, 2
_BYTE_OFFSET = 3  # byte b is token b + 3
VOCAB_SIZE = 256 + _BYTE_OFFSET


class ByteTokenizer:
    name = "utf8-bytes"
    vocab_size = VOCAB_SIZE

    def __init__(self, context_length: int) -> None:
        if context_length < 3:
            raise ValueError("context_length must leave room for BOS, EOS and one byte")
        self.context_length = context_length

    def encode(self, text: str) -> list[int]:
        """BOS + UTF-8 bytes (whitespace-normalised, truncated) + EOS."""
        normalised = " ".join(text.split())
        body = normalised.encode("utf-8")[: self.context_length - 2]
        return [BOS, *(b + _BYTE_OFFSET for b in body), EOS]

    def decode(self, tokens: list[int]) -> str:
        body = bytes(t - _BYTE_OFFSET for t in tokens if t >= _BYTE_OFFSET)
        # Truncation may cut a multi-byte character in half; drop the fragment.
        return body.decode("utf-8", errors="ignore")

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """Batch of texts -> (N, context_length) int64, right-padded with PAD."""
        batch = torch.full((len(texts), self.context_length), PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            tokens = self.encode(text)
            batch[row, : len(tokens)] = torch.tensor(tokens)
        return batch
