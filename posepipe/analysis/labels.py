"""Labelled people for training and evaluation, as BlazePose's 33 landmarks.

:func:`load_labels` reads four formats and tells them apart by their shape:

- **COCO keypoints** (a JSON object with ``images`` and ``annotations``): keypoints named
  as BlazePose landmarks go to those landmarks (COCO's 17 through ``COCO_TO_BLAZEPOSE``);
  others, such as PoseTrack's ``head_top``/``head_bottom``, are left out. ``v`` 2 is
  visible, 1 labelled but occluded, 0 not labelled; crowd annotations and those with no
  keypoints are skipped. A file that never uses ``v`` 2 (PoseTrack marks every labelled
  point 1) says nothing about occlusion, so its visibility is unknown (NaN).
- **Limb joints** (``data/labels/limb_joints.json``: a list of ``{"image", "bbox",
  "joints": {index: [x, y]}}``): every joint given is labelled and visible.
- **MPII** (a list of ``{"image", "joints", "joints_vis", "center", "scale"}``): the 12
  limb joints map to BlazePose (pelvis, thorax, neck and head top are left out);
  ``joints_vis`` marks labelled joints, not visible ones, so visibility is unknown. The box
  is MPII's person square, side 200 × ``scale`` around ``center`` (as limb_joints.json).
  Coordinates are kept as given (no MATLAB -1), as limb_joints.json keeps them.
- **posepipe's JSON lines** (``.jsonl``, or a folder holding ``labels.jsonl``, such as
  ``posepipe label`` writes): all 33 landmarks labelled, visibility as the teacher gave it;
  ``roi`` where the record has one. Error records and records without poses are skipped.

Where images are looked for: ``images`` when given; otherwise the labels file's folder,
its parent, and an ``images/`` folder in either. JSON lines sources are relative to the
labels file's folder (or, as ``posepipe image`` writes them, to the working directory).
Limb-joint paths are relative to the labels folder's parent (``data/``). Since the shared
data stores images renamed by dataset (COCO's ``000000000785.jpg`` as
``coco_000000000785.jpg``, PoseTrack's ``images/val/<seq>/000000.jpg`` as
``posetrack18_<seq>.jpg``), a name not found as given is also tried with the prefixes
``coco_``, ``mpii_`` and ``posetrack18_``, and a sequence's first frame as its sequence's
name.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PosepipeError
from ..io import json_lines
from ..roi import RegionOfInterest
from ..topology import COCO_TO_BLAZEPOSE, LANDMARK_INDEX, NUM_LANDMARKS
from ..video.sources import IMAGE_SUFFIXES

COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle")
# MPII joint index → BlazePose landmark (pelvis 6, thorax 7, upper neck 8, head top 9 have none).
MPII_TO_BLAZEPOSE = {0: 28, 1: 26, 2: 24, 3: 23, 4: 25, 5: 27, 10: 16, 11: 14, 12: 12, 13: 11, 14: 13, 15: 15}
# MPII's ``scale`` is the person's height / 200 px.
MPII_SCALE_PX = 200.0
DATASET_PREFIXES = ("coco_", "mpii_", "posetrack18_")
FIRST_FRAME_STEM = "000000"
LABELS_FILE = "labels.jsonl"  # what ``posepipe label`` writes into a dataset folder


@dataclass
class LabelledPerson:
    image: Path  # absolute path of the image file
    keypoints: np.ndarray  # (33, 2) float32 image pixels, NaN where not labelled
    labelled: np.ndarray  # (33,) bool: position known (enters loss and metrics)
    visibility: np.ndarray  # (33,) float32 in [0, 1]: 1 visible, 0 occluded, soft for pseudo-labels; NaN unknown
    bbox: np.ndarray  # (4,) float32 x, y, w, h pixels: the label's box, else the box of the labelled points
    roi: RegionOfInterest | None = None  # the crop a pseudo-label was made on
    coco_image_id: int | None = None  # COCO-format labels, for OKS evaluation
    coco_annotation: dict | None = None  # the original COCO annotation


def person_size(person: LabelledPerson) -> float:
    """The person's size for PCK: the longer side of their box, in pixels (shared/README.md)."""
    return float(max(person.bbox[2], person.bbox[3]))


def _person(image: Path, points: dict[int, tuple[float, float]], visibility: dict[int, float],
            bbox=None, **extra) -> LabelledPerson:
    keypoints = np.full((NUM_LANDMARKS, 2), np.nan, np.float32)
    vis = np.full(NUM_LANDMARKS, np.nan, np.float32)
    for index, xy in points.items():
        keypoints[index] = xy
        vis[index] = visibility.get(index, np.nan)
    labelled = ~np.isnan(keypoints).any(axis=1)
    if bbox is None or not (bbox[2] > 0 and bbox[3] > 0):
        bbox = _points_box(keypoints[labelled])
    return LabelledPerson(image=image, keypoints=keypoints, labelled=labelled, visibility=vis,
                          bbox=np.asarray(bbox, np.float32), **extra)


def _points_box(points: np.ndarray) -> np.ndarray:
    if len(points) == 0:
        return np.zeros(4, np.float32)
    low, high = points.min(axis=0), points.max(axis=0)
    return np.array([low[0], low[1], high[0] - low[0], high[1] - low[1]], np.float32)


class _ImageFinder:
    """Resolves the image names a labels file gives to files, remembering what it could not find."""

    def __init__(self, folders: list[Path]):
        self.folders = [f.resolve() for f in folders]
        self.missing: list[str] = []

    def __call__(self, name: str) -> Path:
        given = Path(name)
        if given.is_absolute():
            candidates = [given]
        else:
            candidates = [folder / n for n in _name_variants(given) for folder in self.folders]
        for candidate in candidates:
            if candidate.is_file():
                return candidate.resolve()
        self.missing.append(name)
        return candidates[0]


def _name_variants(name: Path) -> list[Path]:
    """The name as given, then as the shared data renames it (see the module docstring)."""
    variants = [name, Path(name.name)]
    flat = [p for p in name.parts if p not in ("images", "val", "train", "test")]
    stems = ["_".join(flat)]
    if name.stem == FIRST_FRAME_STEM and len(name.parts) > 1:
        stems.append(name.parent.name + name.suffix)
    variants += [Path(prefix + stem) for prefix in DATASET_PREFIXES for stem in dict.fromkeys([name.name, *stems])]
    return list(dict.fromkeys(variants))


def _default_folders(labels_path: Path) -> list[Path]:
    here = labels_path.parent
    return [here, here / "images", here.parent, here.parent / "images"]


def _require(record: dict, field: str, where: str):
    if not isinstance(record, dict):
        raise PosepipeError(f"{where} is not a JSON object")
    if field not in record:
        raise PosepipeError(f"{where} has no \"{field}\" field")
    return record[field]


def _xy(value, where: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in value[:2])
    except (TypeError, ValueError, IndexError):
        raise PosepipeError(f"{where} is not an [x, y] pair: {value!r}") from None
    return x, y


def _load_coco(data: dict, path: Path, find: _ImageFinder) -> list[LabelledPerson]:
    files = {}
    for i, image in enumerate(_require(data, "images", str(path)) or []):
        where = f"{path}: image record {i}"
        files[_require(image, "id", where)] = _require(image, "file_name", where)
    person_ids, names = set(), COCO_NAMES
    for category in data.get("categories") or []:
        if isinstance(category, dict) and category.get("keypoints"):
            person_ids.add(category.get("id"))
            names = tuple(category["keypoints"])
    mapping = (dict(enumerate(COCO_TO_BLAZEPOSE)) if names == COCO_NAMES else
               {k: LANDMARK_INDEX[n] for k, n in enumerate(names) if n in LANDMARK_INDEX})
    annotations = _require(data, "annotations", str(path)) or []
    # Without a single v=2 the flags only say "labelled" (PoseTrack), not visible/occluded.
    knows_occlusion = any(2 in (a.get("keypoints") or [])[2::3] for a in annotations if isinstance(a, dict))
    found: dict[object, Path] = {}
    people = []
    for i, ann in enumerate(annotations):
        where = f"{path}: annotation {i}" + (f" (id {ann['id']})" if isinstance(ann, dict) and "id" in ann else "")
        flat = _require(ann, "keypoints", where)
        image_id = _require(ann, "image_id", where)
        if ann.get("iscrowd") or ann.get("num_keypoints", 1) == 0:
            continue
        if person_ids and "category_id" in ann and ann["category_id"] not in person_ids:
            continue
        if not isinstance(flat, list) or len(flat) != 3 * len(names):
            raise PosepipeError(f"{where} has {len(flat) if isinstance(flat, list) else 'no list of'} keypoint "
                                f"values where {3 * len(names)} were expected")
        if image_id not in files:
            raise PosepipeError(f"{where} refers to image id {image_id}, which the file does not list")
        points, visibility = {}, {}
        for k, index in mapping.items():
            x, y, v = flat[3 * k: 3 * k + 3]
            if v > 0:
                points[index] = (float(x), float(y))
                visibility[index] = (1.0 if v == 2 else 0.0) if knows_occlusion else math.nan
        if not points:
            continue
        if image_id not in found:
            found[image_id] = find(files[image_id])
        bbox = ann.get("bbox")
        people.append(_person(found[image_id], points, visibility, bbox if bbox and len(bbox) == 4 else None,
                              coco_image_id=int(image_id), coco_annotation=ann))
    return people


def _load_limb_joints(records: list, path: Path, find: _ImageFinder) -> list[LabelledPerson]:
    people = []
    for i, record in enumerate(records):
        where = f"{path}: record {i}"
        name = _require(record, "image", where)
        joints = _require(record, "joints", where)
        if not isinstance(joints, dict):
            raise PosepipeError(f"{where}'s \"joints\" is not an object of landmark index: [x, y]")
        points = {}
        for key, value in joints.items():
            if not (str(key).isdigit() and int(key) < NUM_LANDMARKS):
                raise PosepipeError(f"{where} has joint {key!r}, which is not a landmark index 0-{NUM_LANDMARKS - 1}")
            points[int(key)] = _xy(value, f"{where}'s joint {key}")
        bbox = record.get("bbox")
        people.append(_person(find(name), points, dict.fromkeys(points, 1.0), bbox))
    return people


def _load_mpii(records: list, path: Path, find: _ImageFinder) -> list[LabelledPerson]:
    people = []
    for i, record in enumerate(records):
        where = f"{path}: record {i}"
        name = _require(record, "image", where)
        joints = _require(record, "joints", where)
        flags = record.get("joints_vis", [1] * 16)
        if not (isinstance(joints, list) and isinstance(flags, list) and len(joints) == len(flags) == 16):
            raise PosepipeError(f"{where} does not have the 16 joints and 16 joints_vis flags of MPII")
        points = {MPII_TO_BLAZEPOSE[j]: _xy(joints[j], f"{where}'s joint {j}")
                  for j in MPII_TO_BLAZEPOSE if flags[j]}
        bbox = None
        if "center" in record and "scale" in record:
            (cx, cy), side = _xy(record["center"], f"{where}'s center"), MPII_SCALE_PX * float(record["scale"])
            bbox = [cx - side / 2, cy - side / 2, side, side]
        if points:
            people.append(_person(find(name), points, {}, bbox))
    return people


def _load_jsonl(path: Path, find: _ImageFinder) -> list[LabelledPerson]:
    people = []
    for number, record in json_lines(path):
        where = f"{path}: line {number}"
        source = _require(record, "source", where)
        if "error" in record or not record.get("poses"):
            continue
        if "timestamp_ms" in record and Path(source).suffix.lower() not in IMAGE_SUFFIXES:
            raise PosepipeError(f"{where} is a video frame, which has no image file to train on; "
                                "make labels from video with `posepipe label`")
        image = find(source)
        for k, pose in enumerate(record["poses"]):
            pose_where = f"{where}, pose {k}"
            landmarks = _require(pose, "landmarks", pose_where)
            if not isinstance(landmarks, list) or len(landmarks) != NUM_LANDMARKS:
                raise PosepipeError(f"{pose_where} does not have the {NUM_LANDMARKS} landmarks expected")
            points, visibility = {}, {}
            for index, lm in enumerate(landmarks):
                lm_where = f"{pose_where}, landmark {index}"
                points[index] = (float(_require(lm, "x", lm_where)), float(_require(lm, "y", lm_where)))
                visibility[index] = float(_require(lm, "visibility", lm_where))
            bbox = pose.get("bbox")
            if bbox is not None:
                bbox = [bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1]]
            roi = pose.get("roi")
            if roi is not None and not (isinstance(roi, list) and len(roi) == 4):
                raise PosepipeError(f"{pose_where}'s \"roi\" is not [x, y, size, rotation]")
            people.append(_person(image, points, visibility, bbox,
                                  roi=RegionOfInterest(*map(float, roi)) if roi is not None else None))
    return people


def load_labels(path: str | Path, images: str | Path | None = None) -> list[LabelledPerson]:
    """Every labelled person in a labels file (format detected; see the module docstring).

    Raises :class:`PosepipeError` with one sentence for an unreadable or malformed file,
    images it names that are missing, or a file without any labelled person.
    """
    path = Path(path)
    if path.is_dir():
        path = path / LABELS_FILE
    if not path.is_file():
        raise PosepipeError(f"{path}: labels file not found")
    folders = [Path(images)] if images is not None else _default_folders(path)
    if images is not None and not Path(images).is_dir():
        raise PosepipeError(f"{images}: image folder not found")
    if path.suffix == ".jsonl":
        # posepipe image writes sources as given on its command line: relative to where it ran.
        find = _ImageFinder(folders if images is not None else [path.parent, Path.cwd()])
        people = _load_jsonl(path, find)
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise PosepipeError(f"{path} is not a text file") from None
        except json.JSONDecodeError as exc:
            raise PosepipeError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict) and "annotations" in data:
            people = _load_coco(data, path, _ImageFinder(folders))
        elif isinstance(data, list) and data and isinstance(data[0], dict) and "image" in data[0]:
            first = data[0]
            if isinstance(first.get("joints"), list) or "joints_vis" in first:
                people = _load_mpii(data, path, _ImageFinder(folders))
            else:
                # limb_joints.json names images relative to data/, the labels folder's parent.
                base = folders if images is not None else [path.parent.parent, path.parent]
                people = _load_limb_joints(data, path, _ImageFinder(base))
        elif isinstance(data, list) and not data:
            people = []
        else:
            raise PosepipeError(f"{path} is in no labels format posepipe reads (COCO keypoints, limb joints, MPII "
                                "or posepipe JSON lines)")
    people = [p for p in people if p.labelled.any()]
    missing = sorted({str(p.image) for p in people if not p.image.is_file()})
    if missing:
        raise PosepipeError(f"{path}: {len(missing)} image(s) it names are missing, the first {missing[0]}")
    if not people:
        raise PosepipeError(f"{path} has no labelled person")
    return people
