"""keypoint_instruct/training/sft.py: the vision tower frozen (the whole trainer: tests/test_train_sft.py)."""

from __future__ import annotations

from keypoint_instruct.training.sft import freeze_vision_tower


def test_freeze_vision_tower_leaves_projector_and_llm_trainable(tiny_llava_dir):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_llava_dir)
    trainable, total = freeze_vision_tower(model)
    tower = sum(p.numel() for p in model.model.vision_tower.parameters())
    assert trainable == total - tower > 0
    assert all(p.requires_grad for n, p in model.named_parameters() if "vision_tower" not in n)
