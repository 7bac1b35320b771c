"""keypoint_instruct/training/images.py: LLaVA-1.5's pad-to-square, dataset image entries resolved and checked."""

from __future__ import annotations

import io
import logging
import shutil

import pytest
from PIL import Image

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.training.data import load_sft_dataset
from keypoint_instruct.training.images import CLIP_MEAN_RGB, check_images, pad_to_square, resolve_image


def _jpeg_bytes(size, color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_clip_mean_matches_openai_clip_normalisation():
    from transformers.image_utils import OPENAI_CLIP_MEAN

    assert CLIP_MEAN_RGB == tuple(int(m * 255) for m in OPENAI_CLIP_MEAN)


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (5, 2)])
def test_pad_to_square_keeps_every_pixel_and_fills_with_clip_mean(size):
    image = Image.new("RGB", size, (255, 0, 0))
    padded = pad_to_square(image)
    side = max(size)
    assert padded.size == (side, side)
    colors = dict((color, count) for count, color in padded.getcolors(side * side))
    assert colors[(255, 0, 0)] == size[0] * size[1]  # nothing cropped
    assert colors[CLIP_MEAN_RGB] == side * side - size[0] * size[1]
    # the original sits in the centre: corners are padding, the centre is the image
    assert padded.getpixel((0, 0)) == CLIP_MEAN_RGB
    assert padded.getpixel((side // 2, side // 2)) == (255, 0, 0)


def test_pad_to_square_returns_square_images_unchanged_and_converts_to_rgb():
    square = Image.new("RGB", (8, 8), (1, 2, 3))
    assert pad_to_square(square) is square
    gray = Image.new("L", (4, 2), 200)
    assert pad_to_square(gray).mode == "RGB"


def test_resolve_image_reads_relative_paths_under_the_coco_root(tmp_path):
    (tmp_path / "train2017").mkdir()
    Image.new("L", (6, 4), 50).save(tmp_path / "train2017" / "000000000001.jpg")
    image = resolve_image({"path": "train2017/000000000001.jpg", "bytes": None}, tmp_path)
    assert image.mode == "RGB" and image.size == (6, 4)
    assert resolve_image("train2017/000000000001.jpg", tmp_path).size == (6, 4)


def test_resolve_image_prefers_embedded_bytes_and_accepts_pil():
    value = {"path": "nowhere/x.jpg", "bytes": _jpeg_bytes((3, 7), (0, 255, 0))}
    image = resolve_image(value, None)
    assert image.size == (3, 7) and image.getpixel((1, 1)) == (0, 255, 0)
    pil = Image.new("RGBA", (2, 2))
    assert resolve_image(pil, None).mode == "RGB"


def test_resolve_image_names_the_missing_file(tmp_path):
    with pytest.raises(TrainingConfigError, match=r"train2017/000000000009\.jpg"):
        resolve_image({"path": "train2017/000000000009.jpg", "bytes": None}, tmp_path)


def test_resolve_image_needs_a_root_for_relative_paths_and_rejects_odd_values():
    with pytest.raises(TrainingConfigError, match="coco_root"):
        resolve_image({"path": "train2017/a.jpg", "bytes": None}, None)
    with pytest.raises(TrainingConfigError, match="neither bytes nor a path"):
        resolve_image({"path": None, "bytes": None}, None)
    with pytest.raises(TrainingConfigError, match="unsupported image entry"):
        resolve_image(42, None)


def test_check_images_counts_files_and_accepts_embedded_bytes(dataset_dir, coco_root, caplog):
    dataset = load_sft_dataset(str(dataset_dir), ["all"])
    assert check_images(dataset, coco_root) == len(set(dataset["file_name"]))
    from datasets import Dataset, Image, List

    embedded = Dataset.from_dict({"images": [[{"path": "gone.jpg", "bytes": b"\x89PNG"}]]})
    embedded = embedded.cast_column("images", List(Image(decode=False)))
    with caplog.at_level(logging.INFO, logger="keypoint_instruct.training.images"):
        assert check_images(embedded, None) == 0
    assert "1 images embedded in the dataset" in caplog.text
    assert "referenced image files found" not in caplog.text


def test_check_images_names_missing_files(dataset_dir, coco_root, tmp_path):
    partial = tmp_path / "coco"
    shutil.copytree(coco_root, partial)
    dataset = load_sft_dataset(str(dataset_dir), ["all"])
    victim = sorted(set(dataset["file_name"]))[0]
    (partial / "train2017" / victim).unlink()
    with pytest.raises(TrainingConfigError, match=rf"1 of \d+ images missing .*{victim}"):
        check_images(dataset, partial)
    with pytest.raises(TrainingConfigError, match="--coco_root"):
        check_images(dataset, None)
