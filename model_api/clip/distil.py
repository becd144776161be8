"""Distillation from a teacher CLIP: a single tower taught by a joint one (`joint.py`).

A joint CLIP of two wide towers scores better than either (BENCHMARKS.md, two checkpoints as
one), at twice the cost of each upload. Here a student of one tower learns, beside its own
contrastive loss, to rank each step's captions for each image as the teacher ranks them: the
KL divergence from the teacher's softmax over the batch's image-caption logits to the student's,
in both directions as the contrastive loss (Hinton et al. 2015; on CLIP's logits, the
"interactive contrastive" targets of CLIP-KD, Yang et al. 2024). Those targets carry what class
labels do not: which captions of the right class fit an image better, and which wrong class
is nearly right.

The teacher sees each training image once, as served (the image and its mirror averaged), before
training starts; the student sees that image shifted and perhaps mirrored. Its captions are the
student's own, prepared by the same frozen sentence encoder, so the teacher only adds one small
projection per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint
from .hardware import Device
from .inference import embed_images
from .model import Clip


class TeacherMismatchError(ValueError):
    """The teacher cannot score the student's captions."""


@dataclass(frozen=True)
class Teacher:
    model: Clip  # eval mode, on the student's device
    images: torch.Tensor  # (N, D_teacher) its served vector of each training image

    @classmethod
    def load(cls, directory: Path, student: Clip, images: torch.Tensor, device: Device) -> Teacher:
        """The checkpoint in `directory`, and its vectors of `images` (N, 3, 32, 32) uint8, the
        student's training images in their fixed order."""
        model, _ = load_checkpoint(directory, device=device)
        if model.config.text != student.config.text or model.captions != student.captions:
            raise TeacherMismatchError(
                f"the teacher in {directory} must share the student's sentence encoder and caption set"
            )
        return cls(model, embed_images(model, images, device=device))

    @torch.no_grad()
    def logits(self, rows: torch.Tensor, text_inputs: torch.Tensor) -> torch.Tensor:
        """(B_i,) rows of the training images x (B_t, ...) prepared captions -> (B_i, B_t) logits."""
        texts = self.model.encode_prepared(text_inputs).float()
        return self.model.scale() * self.images[rows] @ texts.T


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) over each image's captions and each caption's images, averaged;
    (B_i, B_t) logits each. Zero when the student ranks as the teacher does."""

    def kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return F.kl_div(
            F.log_softmax(student, dim=1), F.log_softmax(teacher, dim=1), log_target=True, reduction="batchmean"
        )

    return (kl(student_logits, teacher_logits) + kl(student_logits.T, teacher_logits.T)) / 2
