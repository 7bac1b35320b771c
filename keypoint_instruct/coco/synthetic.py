"""A seeded, synthetic COCO tree in COCO's exact schema: fixtures, the demo, and train2017-sized benchmarks.

``write_coco_tree(root, split, images, seed)`` writes ``annotations/{captions,instances,person_keypoints}_<split>
.json`` and (unless ``draw_images=False``) one JPEG per image under ``<split>/``, named like COCO 2014
(``COCO_val2014_000000000042.jpg``) for ``*2014`` splits and like COCO 2017 (``000000000042.jpg``) otherwise.

Images cycle through roles so that every ten images hold eight with a well-labelled person (>= 8 keypoints), one
without people and one hard case (a crowd region, people with few or no labelled keypoints); one image in a hundred
(the 99th, a role without people) has no annotation at all but its captions, as ~0.9% of COCO's images. Scene
types (skiing, tennis, kitchen, ...) tie a pose, objects, colours and captions together; the vocabulary is data
(``data/synthcoco.json``). Annotations are streamed to disk in chunks, so a 118k-image tree stays small in memory.

``shape=TRAIN2017`` shapes the mix like the real train2017 split instead, for benchmarks: a labelled person in 54%
of the images, four people per such image on average (over a third without labelled keypoints), about seven
annotations per image in all, so that 118,287 images give the real split's counts and file sizes (~860k instances,
~262k people, ~590k captions; 450 + 225 + 87 MB).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from keypoint_instruct.coco.keypoints import KEYPOINT_NAMES, SKELETON

log = logging.getLogger(__name__)

ROLES = ("good",) * 8 + ("empty", "hard")
LABELLING = ("all", "most", "few", "none")
ATTACH = {"skis": "feet", "snowboard": "feet", "surfboard": "feet", "skateboard": "feet", "horse": "seat",
          "tennis racket": "hand", "baseball bat": "hand", "frisbee": "hand", "umbrella": "above"}  # fmt: skip
SUBJECTS = {1: ("A man", "A woman", "A person", "A young boy", "A girl"),
            2: ("Two people", "A couple of friends", "Two men"),
            3: ("Three people", "A group of people"), 4: ("A group of people", "Several people")}  # fmt: skip
CHUNK = 2000  # images per encoded chunk
BARE_EVERY = 100  # one image in this many has no annotations (train2017: 1,021 of 118,287 images)


@dataclass(frozen=True)
class Shape:
    """The mix of a tree: which images hold people, how many, how many other objects, how big the polygons."""

    roles: tuple[str, ...] = ROLES  # cycled over the images
    extra_people: tuple[float, ...] = (0.35, 0.3, 0.2, 0.15)  # chances of 0, 1, 2, ... people beside the main one
    crowd_share: float = 0.05  # chance of a crowd region in a "good" image
    other_objects: float = 2.0  # Poisson mean of objects unrelated to the scene type
    person_vertices: tuple[int, int] = (14, 52)  # polygon vertex count range [lo, hi) of a person
    object_vertices: tuple[int, int] = (6, 42)


FIXTURE = Shape()  # the tests' and the demo's mix: a labelled person in ~87% of the images
# train2017: 64,115 of 118,287 images (54%) have a person (~57k of them one with labelled keypoints: here all of
# them do, so a benchmark selects a little more than a real run); 262,465 people (149,813 with keypoints) among
# 860,001 instances; segmentation polygons are most of the 447 MB instances and 212 MB person_keypoints files.
TRAIN2017 = Shape(
    roles=tuple("good" if i * 54 % 100 < 54 else "empty" for i in range(100)),
    extra_people=(0.30, 0.16, 0.11, 0.08, 0.07, 0.06, 0.05, 0.04, 0.04, 0.03, 0.03, 0.02, 0.01),
    crowd_share=0.12,
    other_objects=1.6,
    person_vertices=(14, 52),
    object_vertices=(6, 42),
)


@cache
def vocabulary() -> dict[str, Any]:
    """The categories, sizes, pose templates and scene types of ``data/synthcoco.json``."""
    text = resources.files(__package__).joinpath("synthetic.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass
class _Figure:
    """What the drawing needs besides the annotations: the full body (labelled or not) and a colour."""

    points: np.ndarray  # (17, 2) pixels
    colour: tuple[int, int, int]


@dataclass
class _Image:
    record: dict[str, Any]
    scene: str
    instances: list[dict[str, Any]] = field(default_factory=list)  # instances-file annotations
    keypoints: list[dict[str, Any]] = field(default_factory=list)  # person_keypoints-file annotations
    captions: list[dict[str, Any]] = field(default_factory=list)
    figures: list[_Figure] = field(default_factory=list)
    attached: set[str] = field(default_factory=set)  # objects already placed at the main person


def file_name(split: str, image_id: int) -> str:
    """COCO's file name of an image: 2014 naming for ``*2014`` splits, 2017 naming otherwise."""
    return f"COCO_{split}_{image_id:012d}.jpg" if split.endswith("2014") else f"{image_id:012d}.jpg"


def _polygon(rng: np.random.Generator, box: list[float], lo: int, hi: int) -> list[list[float]]:
    x, y, w, h = box
    n = int(rng.integers(lo, hi))
    angle = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(0.75, 1.0, n)
    xs = x + w / 2 + np.cos(angle) * radius * w / 2
    ys = y + h / 2 + np.sin(angle) * radius * h / 2
    return [np.round(np.column_stack([xs, ys]).ravel(), 2).tolist()]


def _box(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> list[float]:
    x0, x1 = max(0.0, float(min(x0, x1))), min(float(width), float(max(x0, x1)))
    y0, y1 = max(0.0, float(min(y0, y1))), min(float(height), float(max(y0, y1)))
    return [round(x0, 2), round(y0, 2), round(max(x1 - x0, 1.0), 2), round(max(y1 - y0, 1.0), 2)]


class _Generator:
    def __init__(self, split: str, seed: int, shape: Shape = FIXTURE) -> None:
        self.split = split
        self.shape = shape
        self.rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
        vocab = vocabulary()
        self.cat_ids = {name: cid for cid, name, _ in vocab["categories"]}
        self.sizes = vocab["image_sizes"]
        self.poses = {name: np.array(p, dtype=float) for name, p in vocab["poses"].items()}
        self.scenes = vocab["scenes"]
        self.with_people = [s for s, v in self.scenes.items() if v["people"]]
        self.without_people = [s for s, v in self.scenes.items() if not v["people"]]
        self.others = [name for _, name, _ in vocab["categories"] if name != "person"]
        self.next_ann = 100_000 + int(self.rng.integers(0, 1000))
        self.next_cap = 1 + int(self.rng.integers(0, 1000))

    def image(self, index: int, image_id: int) -> _Image:
        rng = self.rng
        width, height = self.sizes[int(rng.integers(len(self.sizes)))]
        role = self.shape.roles[index % len(self.shape.roles)]
        pool = self.without_people if role == "empty" else self.with_people
        scene = pool[int(rng.integers(len(pool)))]
        year = 2014 if self.split.endswith("2014") else 2017
        record = {
            "license": int(rng.integers(1, 9)),
            "file_name": file_name(self.split, image_id),
            "coco_url": f"http://images.cocodataset.org/{self.split}/{file_name(self.split, image_id)}",
            "height": height,
            "width": width,
            "date_captured": f"2013-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d} "
            f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}",
            "flickr_url": f"http://farm{rng.integers(1, 10)}.staticflickr.com/{year}/{image_id}_{image_id % 9973}.jpg",
            "id": image_id,
        }
        img = _Image(record, scene)
        anns: list[dict[str, Any]] = []
        people = 0
        if role == "good":
            anns.append(self._person(img, str(rng.choice(["all", "most"])), 0.5, 0.95))
            extra = self.shape.extra_people
            people = 1 + int(rng.choice(len(extra), p=extra))
            for _ in range(people - 1):
                labelling = str(rng.choice(LABELLING, p=[0.18, 0.14, 0.13, 0.55]))
                small = labelling == "none"
                anns.append(self._person(img, labelling, 0.08 if small else 0.2, 0.25 if small else 0.7))
        elif role == "hard":
            people = int(rng.integers(1, 5))
            for _ in range(people):
                anns.append(self._person(img, str(rng.choice(["few", "none"])), 0.1, 0.6))
        if role == "hard" or (people and rng.random() < self.shape.crowd_share):
            anns.append(self._crowd(img))
        for name in self.scenes[scene]["objects"]:
            for _ in range(int(rng.random() < 0.7) + int(rng.random() < 0.2)):
                anns.append(self._object(img, name))
        for _ in range(int(rng.poisson(self.shape.other_objects))):
            anns.append(self._object(img, self.others[int(rng.integers(len(self.others)))], attach=False))
        # COCO's ids are not in file order: give out this image's ids shuffled (crowd ids are huge, as in COCO).
        ids = self.next_ann + np.sort(rng.choice(len(anns) * 3, size=len(anns), replace=False))
        self.next_ann = int(ids[-1]) + 1 if len(anns) else self.next_ann
        for ann, ann_id in zip(anns, rng.permutation(ids), strict=True):
            ann["id"] = 900_100_000_000 + image_id if ann["iscrowd"] else int(ann_id)
            img.instances.append({k: v for k, v in ann.items() if k not in ("keypoints", "num_keypoints")})
            if ann["category_id"] == 1:
                img.keypoints.append(ann)
        self._captions(img, people)
        if index % BARE_EVERY == BARE_EVERY - 2:  # drawn like the others, so the random stream is unchanged
            img.instances, img.keypoints = [], []
        return img

    def _person(self, img: _Image, labelling: str, lo: float, hi: float) -> dict[str, Any]:
        rng, w, h = self.rng, img.record["width"], img.record["height"]
        pose = self.scenes[img.scene]["pose"][int(rng.integers(len(self.scenes[img.scene]["pose"])))]
        tmpl = self.poses[pose].copy()
        if rng.random() < 0.5:
            tmpl[:, 0] = 1.0 - tmpl[:, 0]  # seen from behind
        ph = rng.uniform(lo, hi) * h
        pw = min(ph * rng.uniform(0.4, 0.7), 0.9 * w)
        x0, y0 = rng.uniform(0, w - pw), rng.uniform(0, h - ph)
        pts = np.column_stack([x0 + tmpl[:, 0] * pw, y0 + tmpl[:, 1] * ph])
        pts += rng.normal(0, 0.012 * ph, pts.shape)
        pts = np.clip(np.round(pts), 0, [w - 1, h - 1])
        pad = 0.06 * ph
        bbox = _box(pts[:, 0].min() - pad, pts[:, 1].min() - 1.5 * pad, pts[:, 0].max() + pad,
                    pts[:, 1].max() + 0.5 * pad, w, h)  # fmt: skip
        n = {"all": 17, "most": int(rng.integers(11, 17)), "few": int(rng.integers(1, 6)), "none": 0}[labelling]
        labelled = np.zeros(17, dtype=bool)
        labelled[rng.choice(17, size=n, replace=False)] = True
        vis = np.where(rng.random(17) < 0.2, 1, 2) * labelled
        kps = np.column_stack([pts * labelled[:, None], vis]).astype(int).ravel().tolist()
        colour = tuple(int(c) for c in rng.integers(30, 220, 3))
        img.figures.append(_Figure(pts, colour))
        return {
            "segmentation": _polygon(rng, bbox, *self.shape.person_vertices),
            "num_keypoints": n,
            "area": round(bbox[2] * bbox[3] * 0.55, 2),
            "iscrowd": 0,
            "keypoints": kps,
            "image_id": img.record["id"],
            "bbox": bbox,
            "category_id": 1,
        }

    def _crowd(self, img: _Image) -> dict[str, Any]:
        rng, w, h = self.rng, img.record["width"], img.record["height"]
        y0 = rng.uniform(0.55, 0.75) * h
        bbox = _box(rng.uniform(0, 0.3) * w, y0, rng.uniform(0.7, 1.0) * w, y0 + rng.uniform(0.1, 0.2) * h, w, h)
        runs = rng.integers(1, 200, int(rng.integers(40, 120))).tolist()
        return {
            "segmentation": {"counts": runs, "size": [h, w]},
            "num_keypoints": 0,
            "area": round(bbox[2] * bbox[3] * 0.7, 2),
            "iscrowd": 1,
            "keypoints": [0] * 51,
            "image_id": img.record["id"],
            "bbox": bbox,
            "category_id": 1,
        }

    def _object(self, img: _Image, name: str, attach: bool = True) -> dict[str, Any]:
        rng, w, h = self.rng, img.record["width"], img.record["height"]
        where = ATTACH.get(name) if attach and img.figures and name not in img.attached else None
        if where:
            img.attached.add(name)
            pts = img.figures[0].points
            span = float(np.ptp(pts[:, 1])) or h / 4
            cx, feet = float(pts[:, 0].mean()), float(pts[15:, 1].max())
            if where == "feet":
                box = _box(cx - 0.35 * span, feet - 0.03 * span, cx + 0.35 * span, feet + 0.05 * span, w, h)
            elif where == "seat":
                box = _box(cx - 0.6 * span, pts[11, 1], cx + 0.6 * span, feet + 0.5 * span, w, h)
            elif where == "above":
                box = _box(cx - 0.4 * span, pts[0, 1] - 0.35 * span, cx + 0.4 * span, pts[0, 1] - 0.1 * span, w, h)
            else:
                hx, hy = pts[10]
                box = _box(hx - 0.12 * span, hy - 0.3 * span, hx + 0.12 * span, hy + 0.02 * span, w, h)
        else:
            bw, bh = rng.uniform(0.04, 0.3) * w, rng.uniform(0.04, 0.3) * h
            x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            box = _box(x0, y0, x0 + bw, y0 + bh, w, h)
        return {
            "segmentation": _polygon(rng, box, *self.shape.object_vertices),
            "area": round(box[2] * box[3] * 0.6, 2),
            "iscrowd": 0,
            "image_id": img.record["id"],
            "bbox": box,
            "category_id": self.cat_ids[name],
        }

    def _captions(self, img: _Image, people: int) -> None:
        rng = self.rng
        templates = self.scenes[img.scene]["captions"]
        details = vocabulary()["caption_details"]
        count = 5 + int(rng.random() < 0.02)
        subjects = SUBJECTS[min(max(people, 1), 4)]
        subject = subjects[int(rng.integers(len(subjects)))]  # one subject per image keeps the captions consistent
        for index in rng.choice(len(templates), size=min(count, len(templates)), replace=False):
            text = templates[int(index)].format(subject=subject, subject_lower=subject[0].lower() + subject[1:])
            if rng.random() < 0.7:
                text = text[:-1] + details[int(rng.integers(len(details)))] + text[-1]
            odd = rng.random()
            if odd < 0.05:  # real COCO captions carry stray whitespace now and then: spaces, newlines, doubled spaces
                text = (text + " ", text + "\n", " " + text, text.replace(" ", "  ", 1))[int(odd * 80)]
            img.captions.append({"image_id": img.record["id"], "id": self.next_cap, "caption": text})
            self.next_cap += 1 + int(rng.integers(0, 3))


def draw(img: _Image, path: Path) -> None:
    """Paint the scene: background, objects as labelled shapes, people as stick figures, crowds as heads."""
    from PIL import Image, ImageDraw

    w, h = img.record["width"], img.record["height"]
    spec = vocabulary()["scenes"][img.scene]
    canvas = Image.new("RGB", (w, h), tuple(spec["background"]))
    pen = ImageDraw.Draw(canvas)
    pen.rectangle([0, int(0.6 * h), w, h], fill=tuple(spec["ground"]))
    names = {cid: name for cid, name, _ in vocabulary()["categories"]}
    for ann in img.instances:
        x, y, bw, bh = ann["bbox"]
        if ann["category_id"] != 1:
            crc = zlib.crc32(names[ann["category_id"]].encode())
            colour = (60 + crc % 160, 60 + (crc >> 8) % 160, 60 + (crc >> 16) % 160)
            pen.ellipse([x, y, x + bw, y + bh], fill=colour, outline=(20, 20, 20))
        elif ann["iscrowd"]:
            for cx in np.linspace(x + 6, x + bw - 6, max(2, int(bw // 14))):
                pen.ellipse([cx - 5, y + bh / 3 - 5, cx + 5, y + bh / 3 + 5], fill=(90, 70, 60))
                pen.rectangle([cx - 4, y + bh / 3 + 5, cx + 4, y + bh], fill=(70, 70, 110))
    for fig in img.figures:
        pts = fig.points
        thick = max(2, int(np.ptp(pts[:, 1]) / 40))
        for a, b in SKELETON:
            pen.line([tuple(pts[a - 1]), tuple(pts[b - 1])], fill=fig.colour, width=thick)
        head = max(3.0, float(np.linalg.norm(pts[3] - pts[4])) / 2)
        pen.ellipse([pts[0, 0] - head, pts[0, 1] - head, pts[0, 0] + head, pts[0, 1] + head], outline=fig.colour,
                    width=thick)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="JPEG", quality=85)


def _header(split: str) -> dict[str, Any]:
    year = 2014 if split.endswith("2014") else 2017
    info = {"description": f"Synthetic COCO {split} (keypoint-instruct)", "url": "http://cocodataset.org",
            "version": "1.0", "year": year, "contributor": "keypoint-instruct synthcoco",
            "date_created": f"{year}/09/01"}  # fmt: skip
    licenses = [{"url": f"http://creativecommons.org/licenses/{i}/2.0/", "id": i, "name": f"License {i}"}
                for i in range(1, 9)]  # fmt: skip
    return {"info": info, "licenses": licenses}


def _categories(kind: str) -> list[dict[str, Any]]:
    if kind == "captions":
        return []
    if kind == "person_keypoints":
        return [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES),
                 "skeleton": [list(pair) for pair in SKELETON]}]  # fmt: skip
    return [{"supercategory": sup, "id": cid, "name": name} for cid, name, sup in vocabulary()["categories"]]


def write_coco_tree(
    root: str | Path, split: str, images: int, seed: int = 0, *, draw_images: bool = True, shape: Shape = FIXTURE
) -> Path:
    """Write a synthetic COCO split under ``root`` and return ``root``."""
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    gen = _Generator(split, seed, shape)
    id_space = max(600_000, 5 * images)
    image_ids = np.sort(gen.rng.choice(id_space, size=images, replace=False) + 1).tolist()
    encoder = msgspec.json.Encoder()
    kinds = ("captions", "instances", "person_keypoints")
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=root / "annotations", prefix=".parts-") as tmp:
        parts = {kind: open(Path(tmp) / kind, "wb") for kind in kinds}  # noqa: SIM115 - closed below
        pending: dict[str, list] = {kind: [] for kind in kinds}
        first = dict.fromkeys(kinds, True)

        def flush() -> None:
            for kind in kinds:
                if pending[kind]:
                    if not first[kind]:
                        parts[kind].write(b",")
                    parts[kind].write(encoder.encode(pending[kind])[1:-1])
                    first[kind], pending[kind] = False, []

        try:
            for index, image_id in enumerate(image_ids):
                img = gen.image(index, image_id)
                records.append(img.record)
                pending["captions"] += img.captions
                pending["instances"] += img.instances
                pending["person_keypoints"] += img.keypoints
                if draw_images:
                    draw(img, root / split / img.record["file_name"])
                if (index + 1) % CHUNK == 0:
                    flush()
            flush()
        finally:
            for handle in parts.values():
                handle.close()
        head = _header(split)
        for kind in kinds:
            with open(root / "annotations" / f"{kind}_{split}.json", "wb") as out:
                out.write(
                    b'{"info":' + encoder.encode(head["info"]) + b',"licenses":' + encoder.encode(head["licenses"])
                )
                out.write(b',"images":' + encoder.encode(records) + b',"annotations":[')
                with open(Path(tmp) / kind, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
                out.write(b"]")
                if kind != "captions":
                    out.write(b',"categories":' + encoder.encode(_categories(kind)))
                out.write(b"}")
    log.info("wrote %d synthetic images of %s under %s", images, split, root)
    return root
