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
from posepipe.analysis.labels import LabelledPerson, load_labels, person_size
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
             (good | {"source": "clip.mp4", "timestamp_ms": 40.0}, "video frame"),
             (jsonl_record("images/gone.png", points), "1 image\\(s\\) it names are missing, the first .*gone.png")]
    for record, pattern in cases:
        (photo_dir / "labels.jsonl").write_text(json.dumps(record) + "\n")
        with pytest.raises(PosepipeError, match=pattern):
            load_labels(photo_dir / "labels.jsonl")
    del good["poses"][0]["landmarks"][3]["visibility"]
    (photo_dir / "labels.jsonl").write_text(json.dumps(good) + "\n")
    with pytest.raises(PosepipeError, match='line 1, pose 0, landmark 3 has no "visibility"'):
        load_labels(photo_dir / "labels.jsonl")


# --- training crops -------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from posepipe.landmarks import LandmarkModel  # noqa: E402
from posepipe.roi import RegionOfInterest  # noqa: E402
from posepipe.topology import FLIP_INDEX  # noqa: E402
from posepipe.training.data import Augmentation, CropDataset, roi_for_person, split_people  # noqa: E402

HIPS_SHOULDERS = [23, 24, 11, 12]


def person_from(points: dict[int, tuple[float, float]], image: Path, bbox=None, visibility=1.0) -> LabelledPerson:
    keypoints = np.full((33, 2), np.nan, np.float32)
    for k, xy in points.items():
        keypoints[k] = xy
    labelled = ~np.isnan(keypoints[:, 0])
    if bbox is None:
        low, high = keypoints[labelled].min(0), keypoints[labelled].max(0)
        bbox = [*low, *(high - low)]
    return LabelledPerson(image=image, keypoints=keypoints, labelled=labelled,
                          visibility=np.where(labelled, visibility, np.nan).astype(np.float32),
                          bbox=np.asarray(bbox, np.float32))


def dot_image(path: Path, centre: tuple[float, float], shape=(320, 320), sigma=3.0) -> Path:
    """Dark grey with one bright Gaussian dot at a sub-pixel position."""
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    blob = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    cv2.imwrite(str(path), np.repeat((20 + 180 * blob)[..., None], 3, axis=2).round().astype(np.uint8))
    return path


def brightest(image: np.ndarray) -> np.ndarray:
    """(x, y) of the brightest crop pixel; the centre of the plateau where clipping made several."""
    total = image.sum(axis=0)
    ys, xs = np.nonzero(total == total.max())
    return np.array([xs.mean(), ys.mean()])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dot=st.tuples(st.floats(110, 210), st.floats(110, 210)), which=st.sampled_from([0, 7, 13, 15, 25, 27, 31]),
       body=st.tuples(st.floats(-0.6, 0.6), st.floats(40, 90)), seed=st.integers(0, 10**6))
def test_target_lands_where_the_crop_shows_it(tmp_path_factory, dot, which, body, seed):
    """Draw a dot at one landmark: after any augmentation but occlusion the crop's brightest
    pixel is the target, flipped or not, rotated or not."""
    folder = tmp_path_factory.mktemp("dot")
    image = dot_image(folder / "dot.png", dot)
    tilt, half = body  # a body around the image centre, leaning by `tilt` radians
    up = np.array([math.sin(tilt), -math.cos(tilt)])
    side = np.array([math.cos(tilt), math.sin(tilt)]) * 20
    hip, shoulder = np.array([160.0, 170.0]), np.array([160.0, 170.0]) + up * half
    points = {23: hip + side, 24: hip - side, 11: shoulder + side, 12: shoulder - side, which: dot}
    dataset = CropDataset([person_from(points, image)], Augmentation(occlusion=0.0), seed=seed)
    sample = dataset[0]
    # Only `which` is labelled of its left/right pair, so its (possibly swapped) index tells a flip.
    index = which if sample["weight"][which] else FLIP_INDEX[which]
    assert sample["weight"][index] == 1
    target = sample["keypoints"][index] * 256
    if np.all((target > 3) & (target < 253)):
        assert np.linalg.norm(brightest(sample["image"]) - target) < 1.5


def test_roi_rule(tmp_path):
    image = tmp_path / "x.png"
    # Upright body: hips at (100, 200), shoulders 80 px above, a wrist far out to the right.
    points = {23: (90, 200), 24: (110, 200), 11: (90, 120), 12: (110, 120), 15: (220, 150)}
    person = person_from(points, image, bbox=[80, 100, 150, 120])
    roi = roi_for_person(person)
    assert (roi.x, roi.y) == (100, 200) and abs(roi.rotation) < 1e-9
    assert math.isclose(roi.size, 2 * 1.25 * math.hypot(120, 50))  # the wrist is the farthest point
    # Lying down, shoulders to the left of the hips: turned so that they point up.
    lying = person_from({23: (100, 190), 24: (100, 210), 11: (20, 190), 12: (20, 210)}, image)
    assert math.isclose(roi_for_person(lying).rotation, -math.pi / 2)
    # No hips: the box's centre; a tiny box still gives at least its size × 1.25.
    head = person_from({0: (50, 60)}, image, bbox=[40, 40, 20, 60])
    roi = roi_for_person(head)
    assert (roi.x, roi.y, roi.size) == (50, 70, 2 * 1.25 * 30)
    teacher = RegionOfInterest(1, 2, 3, 0.4)
    person.roi = teacher
    assert roi_for_person(person) is teacher


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-500, 500), st.floats(-500, 500)), min_size=1, max_size=33),
       st.booleans())
def test_every_labelled_point_fits_the_crop(points, with_box):
    person = person_from(dict(enumerate(points)), Path("x.png"),
                         bbox=[-100, -50, 30, 400] if with_box else None)
    roi = roi_for_person(person)
    matrix = roi.image_to_tensor(256)
    targets = (person.keypoints[person.labelled] @ matrix[:, :2].T + matrix[:, 2]) / 256
    assert np.all((targets >= 0.1 - 1e-6) & (targets <= 0.9 + 1e-6))  # inside with the 25 % margin
    assert roi.size >= max(1.25 * person_size(person), 16) - 1e-6  # never smaller than the person


@pytest.fixture()
def astronaut_dataset(tmp_path) -> tuple[list[LabelledPerson], np.ndarray]:
    rgb = sample_image("astronaut.png")
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    rng = np.random.default_rng(1)
    people = [person_from({k: tuple(rng.uniform(150, 350, 2)) for k in range(33) if rng.random() < 0.7},
                          path.resolve(), visibility=0.8) for _ in range(4)]
    return people, rgb


def test_flip_mirrors_and_swaps(astronaut_dataset):
    people, _ = astronaut_dataset
    plain = CropDataset(people, None)[1]
    flipped = CropDataset(people, Augmentation(0.0, (1.0, 1.0), 0.0, 1.0, 0.0, 0.0, 0.0))[1]
    assert np.array_equal(flipped["image"], plain["image"][:, :, ::-1])
    swap = list(FLIP_INDEX)
    assert np.array_equal(flipped["weight"], plain["weight"][swap])
    labelled = plain["weight"][swap] > 0
    assert np.allclose(flipped["keypoints"][labelled, 0], 255 / 256 - plain["keypoints"][swap][labelled, 0], atol=1e-6)
    assert np.allclose(flipped["keypoints"][labelled, 1], plain["keypoints"][swap][labelled, 1], atol=1e-6)
    assert swap[11] == 12 and swap[0] == 0  # left shoulder ↔ right shoulder, the nose stays


def test_plain_crop_is_the_inference_crop(astronaut_dataset):
    people, rgb = astronaut_dataset
    sample = CropDataset(people, Augmentation.none())[0]
    roi = roi_for_person(people[0])
    assert np.array_equal(sample["image"], LandmarkModel(None).preprocess(rgb, [roi])[0])
    assert sample["image"].dtype == np.float32 and sample["image"].shape == (3, 256, 256)
    projected = roi.tensor_to_image(1.0)(sample["keypoints"][people[0].labelled])
    assert np.allclose(projected, people[0].keypoints[people[0].labelled], atol=1e-3)
    assert np.array_equal(sample["weight"] > 0, people[0].labelled)
    assert np.allclose(sample["visibility"][people[0].labelled], 0.8)
    assert np.array_equal(sample["visibility_weight"] > 0, people[0].labelled)
    assert math.isclose(sample["size"], person_size(people[0]) / roi.size, rel_tol=1e-6)


def test_samples_are_reproducible(astronaut_dataset):
    people, _ = astronaut_dataset
    a, b = CropDataset(people, Augmentation(), seed=3), CropDataset(people, Augmentation(), seed=3)
    a.set_epoch(5)
    b.set_epoch(5)
    for i in range(len(people)):
        x, y = a[i], b[i]
        assert all(np.array_equal(x[k], y[k]) for k in x)
    b.set_epoch(6)
    assert not np.array_equal(a[2]["image"], b[2]["image"])
    other_seed = CropDataset(people, Augmentation(), seed=4)
    other_seed.set_epoch(5)
    assert not np.array_equal(a[2]["image"], other_seed[2]["image"])


def test_occlusion_hides_points(astronaut_dataset):
    people, _ = astronaut_dataset
    only_occlusion = Augmentation(0.0, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, 1.0)
    plain = CropDataset(people, None)
    hidden_total = 0
    for seed in range(8):
        sample = CropDataset(people, only_occlusion, seed=seed)[0]
        changed = np.any(sample["image"] != plain[0]["image"], axis=0)
        ys, xs = np.nonzero(changed)
        assert changed.sum() == (np.ptp(xs) + 1) * (np.ptp(ys) + 1)  # one filled rectangle
        hidden = (sample["visibility"] == 0) & (sample["weight"] > 0)
        px = np.rint(sample["keypoints"][hidden] * 256).astype(int)
        assert changed[px[:, 1], px[:, 0]].all()
        hidden_total += hidden.sum()
        assert np.array_equal(sample["visibility_weight"] > 0, people[0].labelled)
    assert hidden_total > 0


def test_split_by_image(tmp_path):
    people = [person_from({0: (1, 2)}, tmp_path / f"{i % 7}.png") for i in range(30)]
    train, val = split_people(people, 0.3, seed=1)
    assert len(train) + len(val) == 30 and val
    assert not {p.image for p in train} & {p.image for p in val}
    assert len({p.image for p in val}) == 2  # round(0.3 × 7) images
    again = split_people(people[::-1], 0.3, seed=1)
    assert {id(p) for p in again[1]} == {id(p) for p in val}  # the order of the list does not matter
    assert {p.image for p in split_people(people, 0.3, seed=2)[1]} != {p.image for p in val}
    assert split_people(people[:1], 0.5)[1] == [] and len(split_people(people, 0.01)[1]) > 0
    with pytest.raises(PosepipeError):
        split_people(people, 1.5)


def test_dataloader_collates(astronaut_dataset):
    torch = pytest.importorskip("torch")
    people, _ = astronaut_dataset
    batch = next(iter(torch.utils.data.DataLoader(CropDataset(people, Augmentation()), batch_size=4)))
    assert batch["image"].shape == (4, 3, 256, 256) and batch["image"].dtype == torch.float32
    assert batch["keypoints"].shape == (4, 33, 2) and batch["size"].shape == (4,)
    assert batch["index"].tolist() == [0, 1, 2, 3]


@needs_shared
def test_shared_labels_crop():
    people = load_labels(LABELS / "limb_joints.json")
    dataset = CropDataset(people, None)
    for i in range(len(dataset)):
        sample = dataset[i]
        kept = sample["keypoints"][people[i].labelled]
        assert np.all((kept > 0.1 - 1e-4) & (kept < 0.9 + 1e-4))
        assert 0.3 < sample["size"] <= 0.8 + 1e-6


# --- posepipe label -----------------------------------------------------------------------

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from posepipe.io import read_image  # noqa: E402
from posepipe.pipeline import PoseLandmarker  # noqa: E402
from tests.test_video_io import make_video  # noqa: E402


def posepipe(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "posepipe.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, grace_path, model_paths) -> tuple[Path, subprocess.CompletedProcess]:
    """Two photos in a folder, a 7-frame video, a text file posing as a video and a missing file."""
    folder = tmp_path_factory.mktemp("label")
    (folder / "photos").mkdir()
    cv2.imwrite(str(folder / "photos" / "astronaut.png"), cv2.cvtColor(sample_image("astronaut.png"), cv2.COLOR_RGB2BGR))
    shutil.copy(grace_path, folder / "photos" / "grace_hopper.jpg")
    make_video(folder / "clip.mp4", [40.0 * i for i in range(7)])
    (folder / "notes.mp4").write_text("this is not a video\n")
    proc = posepipe("label", folder / "photos", folder / "clip.mp4", folder / "notes.mp4", folder / "gone.jpg",
                    "-o", folder / "dataset", "--every", 3)
    return folder / "dataset", proc


def test_label_command_writes_a_dataset(labelled):
    dataset, proc = labelled
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # two inputs failed, the others were labelled
    ours = [line for line in proc.stderr.splitlines() if line.startswith("posepipe")]
    assert len(ours) == 3 and "gone.jpg: file not found" in ours[1] and "notes.mp4: not a readable video" in ours[0]
    records = [json.loads(line) for line in (dataset / "labels.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == [
        "frames/astronaut.jpg", "frames/grace_hopper.jpg", "frames/clip_000000.jpg", "frames/clip_000003.jpg",
        "frames/clip_000006.jpg", str(dataset.parent / "notes.mp4"), str(dataset.parent / "gone.jpg")]
    assert [r.get("frame") for r in records[2:5]] == [0, 3, 6] and records[3]["timestamp_ms"] == 120.0
    assert records[3]["origin"] == str(dataset.parent / "clip.mp4") and "error" in records[-1]
    for r in records[:5]:
        assert len(r["poses"]) == 1 and len(r["poses"][0]["roi"]) == 4
        name = Path(r["source"]).stem
        assert read_image(dataset / r["source"]).shape[1] == r["width"]
        assert read_image(dataset / "crops" / f"{name}_p0.jpg").shape == (256, 256, 3)


def test_labels_read_back_and_crop_as_the_teacher(labelled):
    dataset, _ = labelled
    people = load_labels(dataset)
    assert len(people) == 5 and all(p.roi is not None and p.labelled.all() for p in people)
    samples = CropDataset(people, None)
    with PoseLandmarker() as landmarker:  # as `posepipe label` runs it: default options, no masks
        detected = [landmarker.detect(read_image(person.image)) for person in people[:2]]
    for i, person in enumerate(people[:3]):
        image = read_image(person.image)
        # The teacher ran on the stored picture: running it again gives the labels.
        poses = detected[i] if i < 2 else None
        if poses is not None:
            assert np.abs(poses.landmarks[0, :, :2] - person.keypoints).max() < 2e-3
            assert np.allclose(poses.rois[0], [person.roi.x, person.roi.y, person.roi.size, person.roi.rotation])
        # Training's crop is the teacher's crop, bit for bit, and the targets are its landmarks.
        sample = samples[i]
        assert np.array_equal(sample["image"], LandmarkModel(None).preprocess(image, [person.roi])[0])
        assert np.allclose(person.roi.tensor_to_image(1.0)(sample["keypoints"]), person.keypoints, atol=1e-3)
        assert np.allclose(sample["visibility"], person.visibility) and sample["visibility_weight"].all()


def test_label_command_bad_options(tmp_path, grace_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = posepipe("label", grace_path, "-o", blocker / "dataset")
    assert proc.returncode == 2 and "cannot create the dataset folder" in proc.stderr and "Traceback" not in proc.stderr
    proc = posepipe("label", grace_path, "-o", tmp_path / "d", "--every", 0)
    assert proc.returncode == 2 and "--every" in proc.stderr and "Traceback" not in proc.stderr


def test_interrupted_label_run_leaves_a_readable_dataset(tmp_path, grace_path, model_paths):
    """Ctrl-C after the first line: whole lines, each picture they name written, exit code 130."""
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        shutil.copy(grace_path, folder / f"{i:02d}.jpg")
    labels = tmp_path / "dataset" / "labels.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "posepipe.cli", "label", str(folder), "-o", str(tmp_path / "dataset")],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not labels.exists() or labels.stat().st_size == 0):
        time.sleep(0.05)
    proc.send_signal(2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    lines = labels.read_text().splitlines()
    assert 1 <= len(lines) < 40
    assert all((tmp_path / "dataset" / json.loads(line)["source"]).is_file() for line in lines)
    assert len(load_labels(labels.parent)) == len(lines)
