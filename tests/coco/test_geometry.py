"""Image-plane geometry of keypoints."""

import pytest

from keypoint_instruct.coco.annotations import Instance
from keypoint_instruct.coco.geometry import from_down, inner_angle, labelled_joints, limb_angle


def test_inner_angle_degenerate_segment():
    assert inner_angle((0, 0), (0, 0), (1, 1)) is None
    assert inner_angle((1, 0), (0, 0), (0, 1)) == pytest.approx(90)


def test_limb_angle_leaves_out_a_segment_seen_end_on():
    assert limb_angle((0, 0), (0, 10), (0, 20)) == pytest.approx(180)
    assert limb_angle((0, 0), (0, 10), (0, 14)) is None  # lower segment under half the upper one


def test_from_down_reads_image_y_downwards():
    assert from_down((0, 0), (0, 10)) == pytest.approx(0)  # hanging down
    assert from_down((0, 0), (10, 0)) == pytest.approx(90)  # level
    assert from_down((0, 10), (0, 0)) == pytest.approx(180)  # up


def test_labelled_joints_skip_unlabelled_ones():
    keypoints = [0.0] * 51
    keypoints[0:3] = [5.0, 6.0, 2]  # nose visible
    keypoints[3:6] = [7.0, 8.0, 1]  # left eye labelled, hidden
    instance = Instance(1, "person", (0, 0, 10, 10), False, tuple(keypoints), 2)
    assert labelled_joints(instance) == {"nose": (5.0, 6.0, 2), "left_eye": (7.0, 8.0, 1)}
