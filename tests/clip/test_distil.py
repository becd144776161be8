"""Distillation from a teacher CLIP: the loss, the teacher's checks, and a student that learns
to rank captions as its teacher does."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from model_api.clip.checkpoint import load_checkpoint
from model_api.clip.distil import Teacher, TeacherMismatchError, distillation_loss
from model_api.clip.inference import embed_images
from model_api.clip.model import Clip
from model_api.clip.train import Trainer
from tests.conftest import CAPTIONS, TINY_DEVICE, TINY_MODEL, TINY_RECIPE


def test_the_loss_is_zero_only_when_the_student_ranks_as_the_teacher():
    teacher = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    assert distillation_loss(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(teacher + 3.0, teacher).item() == pytest.approx(0.0, abs=1e-6)  # softmax ignores shifts
    assert distillation_loss(teacher.flip(1), teacher).item() > 0.1


def test_a_teacher_with_another_text_tower_is_refused(tiny_checkpoint, tiny_data):
    other_text = replace(TINY_MODEL, text=replace(TINY_MODEL.text, width=64))
    with pytest.raises(TeacherMismatchError):
        Teacher.load(tiny_checkpoint, Clip(other_text, CAPTIONS), tiny_data.train.images[:4], TINY_DEVICE)


def disagreement(student: Clip, teacher: Clip, images: torch.Tensor) -> float:
    """KL from the teacher's ranking of the class captions for `images` to the student's."""
    texts = CAPTIONS.classes
    logits = [
        model.scale() * embed_images(model, images, device=TINY_DEVICE) @ model.encode_text(list(texts)).T
        for model in (student, teacher)
    ]
    return distillation_loss(*logits).item()


def test_a_student_learns_to_rank_as_its_teacher(tiny_checkpoint, tiny_data, tmp_path):
    # Same seed, data and steps; only the teacher differs. The teacher is the tiny checkpoint,
    # trained 12 epochs; the students train 3.
    recipe = replace(TINY_RECIPE, epochs=3)
    taught = replace(recipe, distil_from=str(tiny_checkpoint), distil_weight=5.0)
    for name, run in (("alone", recipe), ("taught", taught)):
        Trainer(tiny_data, TINY_MODEL, run, tmp_path / name, CAPTIONS, device=TINY_DEVICE).fit()
    teacher, _ = load_checkpoint(tiny_checkpoint)
    students = {name: load_checkpoint(tmp_path / name / "best")[0] for name in ("alone", "taught")}
    with torch.inference_mode():
        gaps = {name: disagreement(student, teacher, tiny_data.test.images) for name, student in students.items()}
    assert gaps["taught"] < gaps["alone"]
    saved = json.loads((tmp_path / "taught" / "best" / "config.json").read_text())
    assert saved["train"]["distil_from"] == str(tiny_checkpoint)
