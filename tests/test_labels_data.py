"""Training data: labels in four formats, training crops made by the inference ROI code,
augmentation, splits, and pseudo-labels from the pretrained model (``posepipe label``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from posepipe.errors import PosepipeError
from posepipe.labels import LabelledPerson, load_labels, person_size
from posepipe.topology import COCO_TO_BLAZEPOSE, NUM_LANDMARKS

from tests.conftest import SHARED, needs_shared, sample_image

LABELS = SHARED / "data" / "labels"


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture()
def photo_dir(tmp_path) -> Path:
    """A folder with the astronaut photo as ``images/astronaut.png``."""
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "astronaut.png"), cv2.cvtColor(sample_image("astronaut.png"), cv2.COLOR_RGB2BGR))
    return tmp_path


def coco_file(folder: Path, **annotation) -> Path:
    flat = []
    for k in range(17):
        flat += [10.0 + k, 20.0 + 2 * k, (0, 1, 2)[k % 3]]
    ann = {"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 11, "bbox": [5, 6, 50, 80],
           "keypoints": flat} | annotation
    return write_json(folder / "coco.json", {
        "images": [{"id": 1, "file_name": "astronaut.png", "width": 512, "height": 512}],
        "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "left_eye", "right_eye", "left_ear",
                       "right_ear", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                       "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                       "right_ankle"]}],
        "annotations": [ann, ann | {"id": 8, "iscrowd": 1}, ann | {"id": 9, "num_keypoints": 0}]})


def test_coco_format(photo_dir):
    people = load_labels(coco_file(photo_dir))
    assert len(people) == 1  # crowd and keypoint-less annotations skipped
    p = people[0]
    assert p.image == (photo_dir / "images" / "astronaut.png").resolve()
    assert p.keypoints.shape == (33, 2) and p.keypoints.dtype == np.float32
    for k, index in enumerate(COCO_TO_BLAZEPOSE):
        v = k % 3
        assert p.labelled[index] == (v > 0)
        if v:
            assert tuple(p.keypoints[index]) == (10.0 + k, 20.0 + 2 * k)
            assert p.visibility[index] == (1.0 if v == 2 else 0.0)
        else:
            assert np.isnan(p.keypoints[index]).all() and np.isnan(p.visibility[index])
    others = sorted(set(range(33)) - set(COCO_TO_BLAZEPOSE))
    assert not p.labelled[others].any() and np.isnan(p.visibility[others]).all()
    assert p.bbox.tolist() == [5, 6, 50, 80] and person_size(p) == 80
    assert p.coco_image_id == 1 and p.coco_annotation["id"] == 7


def test_limb_joints_and_mpii_formats(tmp_path, photo_dir):
    labels = photo_dir / "labels"
    labels.mkdir()
    people = load_labels(write_json(labels / "limbs.json", [
        {"image": "images/astronaut.png", "bbox": [1, 2, 30, 40], "joints": {"11": [5, 6], "28": [7, 8]}},
        {"image": "images/astronaut.png", "joints": {"12": [10, 20], "13": [40, 60]}}]))
    assert [p.labelled.sum() for p in people] == [2, 2]
    assert people[0].keypoints[28].tolist() == [7, 8] and people[0].visibility[[11, 28]].tolist() == [1, 1]
    assert person_size(people[0]) == 40
    assert people[1].bbox.tolist() == [10, 20, 30, 40]  # no box given: the labelled points' box

    joints = [[float(j), float(2 * j)] for j in range(16)]
    people = load_labels(write_json(labels / "mpii.json", [
        {"image": "astronaut.png", "joints": joints, "joints_vis": [1] * 5 + [0] + [1] * 10,
         "center": [100, 200], "scale": 1.5}]))
    p = people[0]
    assert p.labelled.sum() == 11  # 12 limb joints less the left ankle (MPII 5)
    assert p.keypoints[28].tolist() == [0, 0] and p.keypoints[15].tolist() == [15, 30] and not p.labelled[27]
    assert np.isnan(p.visibility).all()  # joints_vis says labelled, not visible
    assert p.bbox.tolist() == [-50, 50, 300, 300]


def test_bad_labels(tmp_path, photo_dir):
    def fails(path, pattern, **kw):
        with pytest.raises(PosepipeError, match=pattern) as info:
            load_labels(path, **kw)
        assert "\n" not in str(info.value)

    fails(tmp_path / "nope.json", "not found")
    (tmp_path / "junk.json").write_text("{not json")
    fails(tmp_path / "junk.json", "is not JSON")
    (tmp_path / "junk.jsonl").write_text('{"source": "a.png", "poses": []}\n{broken\n')
    fails(tmp_path / "junk.jsonl", "line 2 is not JSON")
    fails(write_json(tmp_path / "other.json", {"hello": 1}), "no labels format")
    fails(write_json(tmp_path / "limbs.json", [{"image": "x.png", "bbox": [0, 0, 1, 1]}]), 'record 0 has no "joints"')
    fails(write_json(tmp_path / "limbs.json", [{"image": f"x{i}.png", "joints": {"11": [1, 2]}} for i in range(3)]),
          r"3 image\(s\) it names are missing, the first .*x0.png")
    fails(coco_file(photo_dir, keypoints=[0] * 51), "has no labelled person")
    fails(coco_file(photo_dir, image_id=5), "image id 5")
    ann_without = {"images": [{"id": 1, "file_name": "astronaut.png"}], "annotations": [{"image_id": 1}]}
    fails(write_json(photo_dir / "c.json", ann_without), 'annotation 0 has no "keypoints"')
    fails(coco_file(photo_dir), "image folder not found", images=tmp_path / "missing")


def jsonl_record(source: str, landmarks: np.ndarray, roi=None) -> dict:
    pose = {"score": 0.9, "bbox": [*landmarks.min(0).tolist(), *landmarks.max(0).tolist()],
            "landmarks": [{"name": "x", "x": float(x), "y": float(y), "z": 0.0, "visibility": 0.25, "presence": 0.9}
                          for x, y in landmarks]}
    if roi is not None:
        pose["roi"] = roi
    return {"source": source, "frame": 0, "width": 512, "height": 512, "poses": [pose]}


def test_posepipe_jsonl(photo_dir):
    points = np.stack([np.arange(33) + 100.0, np.arange(33) * 2 + 50.0], axis=1)
    lines = [jsonl_record("images/astronaut.png", points, roi=[200, 210, 300, 0.1]),
             {"source": "broken.png", "error": "the file is empty"},
             {"source": "images/astronaut.png", "frame": 0, "width": 512, "height": 512, "poses": []}]
    (photo_dir / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    people = load_labels(photo_dir)  # a dataset folder means its labels.jsonl
    assert len(people) == 1
    p = people[0]
    assert p.labelled.all() and np.allclose(p.keypoints, points) and np.allclose(p.visibility, 0.25)
    assert p.bbox.tolist() == [100, 50, 32, 64] and person_size(p) == 64
    assert (p.roi.x, p.roi.y, p.roi.size) == (200, 210, 300) and math.isclose(p.roi.rotation, 0.1)


@needs_shared
def test_shared_labels_agree():
    """The four shared files load, and limb_joints.json (the scoring file) agrees with the
    original annotations point for point and box for box."""
    limbs = load_labels(LABELS / "limb_joints.json")
    originals = [p for name in ("coco_keypoints.json", "posetrack18_keypoints.json", "mpii.json")
                 for p in load_labels(LABELS / name)]
    assert len(limbs) == 31 and len(originals) == 31
    assert all(p.image.is_file() and p.image.parent == (SHARED / "data" / "images").resolve() for p in originals)
    limb_joints = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    for limb in limbs:
        match = [o for o in originals if o.image == limb.image and np.allclose(o.bbox, limb.bbox, atol=0.01)]
        assert len(match) == 1, limb.image
        o = match[0]
        assert np.array_equal(limb.labelled[limb_joints], o.labelled[limb_joints])
        assert np.allclose(limb.keypoints[limb.labelled], o.keypoints[limb.labelled])
        assert math.isclose(person_size(limb), person_size(o), rel_tol=1e-6)
    posetrack = load_labels(LABELS / "posetrack18_keypoints.json")
    assert not any(p.labelled[[2, 5]].any() for p in posetrack)  # head_top/bottom are not eyes
    assert all(np.isnan(p.visibility).all() for p in posetrack)  # PoseTrack's flags say labelled, not visible


def test_bad_jsonl_records(tmp_path, photo_dir):
    points = np.zeros((33, 2))
    good = jsonl_record("images/astronaut.png", points)
    cases = [({"poses": good["poses"]}, 'line 1 has no "source"'),
             (good | {"poses": [{"score": 1}]}, 'line 1, pose 0 has no "landmarks"'),
             (jsonl_record("images/astronaut.png", points[:20]), "does not have the 33 landmarks"),
             (jsonl_record("images/astronaut.png", points, roi=[1, 2]), "is not \\[x, y, size, rotation\\]"),
             (good | {"timestamp_ms": 40.0}, "video frame"),
             (jsonl_record("images/gone.png", points), "1 image\\(s\\) it names are missing, the first .*gone.png")]
    for record, pattern in cases:
        (photo_dir / "labels.jsonl").write_text(json.dumps(record) + "\n")
        with pytest.raises(PosepipeError, match=pattern):
            load_labels(photo_dir / "labels.jsonl")
    del good["poses"][0]["landmarks"][3]["visibility"]
    (photo_dir / "labels.jsonl").write_text(json.dumps(good) + "\n")
    with pytest.raises(PosepipeError, match='line 1, pose 0, landmark 3 has no "visibility"'):
        load_labels(photo_dir / "labels.jsonl")
