"""Accuracy on labelled people: PCK and mean error per landmark, and COCO's OKS AP.

The protocol is ``shared/README.md``'s: each labelled person is cropped from their image to
their box grown by 25 % a side (clipped to the image), the whole pipeline (detector, then
landmark model; one pose) runs on the crop, and the landmarks go back to image pixels. A
joint's error is its distance to the label divided by the person's size
(:func:`~posepipe.analysis.labels.person_size`, the longer side of the box); PCK@t is the share of
labelled joints whose error is under t. A person in whom no pose is found is a miss: all
their joints fail, and they are left out of the mean error.

For COCO-format labels, OKS AP (pycocotools' ``COCOeval``, keypoints) scores the same
predictions: each found person gives one result, the 17 COCO points of their landmarks with
the pose's score, against ground truth built from those people's annotations.

>>> people = load_labels("shared/data/labels/limb_joints.json")      # doctest: +SKIP
>>> with PoseLandmarker(num_poses=1) as landmarker:                   # doctest: +SKIP
...     result = evaluate(people, landmarker)
>>> result.pck[0.1], result.misses                                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..errors import PosepipeError
from .labels import LabelledPerson, person_size
from ..results import Poses
from ..topology import COCO_SIGMAS, COCO_TO_BLAZEPOSE, LANDMARK_NAMES, NUM_LANDMARKS

CROP_MARGIN = 0.25  # the box grows by this share of its width/height on each side
THRESHOLDS = (0.05, 0.1)
DEFAULT_MODEL = "default"  # in a model spec: MediaPipe's full landmark model


class Landmarker(Protocol):
    def detect(self, image: np.ndarray, boxes: np.ndarray | None = None) -> Poses: ...


@dataclass
class Prediction:
    """One labelled person's predicted landmarks, or a miss."""

    landmarks: np.ndarray | None  # (33, 2) image pixels; None: no pose found
    score: float = 0.0  # the pose's score (the landmark model's presence)


@dataclass
class LandmarkScore:
    joints: int  # labelled joints of this landmark
    pck: dict[float, float]
    mean_error: float  # over found persons; NaN when all were missed


@dataclass
class EvaluationResult:
    """A model's scores on a set of labelled people."""

    name: str
    persons: int
    misses: int
    joints: int  # labelled joints, missed persons' included
    pck: dict[float, float]  # threshold → share of labelled joints within it
    mean_error: float  # mean normalised error over the labelled joints of found persons
    per_landmark: dict[str, LandmarkScore]  # the landmarks labelled anywhere, in BlazePose order
    errors: np.ndarray = field(repr=False)  # (persons, 33): normalised errors, NaN unlabelled, inf missed
    coco: dict[str, float] | None = None  # "AP", "AP50", "AP75" for COCO-format labels
    model: str = ""  # the landmark model file, where known
    backend: str = ""

    def to_dict(self) -> dict:
        """For JSON: thresholds as strings, NaN as None."""
        def number(x: float) -> float | None:
            return None if math.isnan(x) else round(float(x), 6)

        return {
            "name": self.name, "model": self.model, "backend": self.backend, "persons": self.persons,
            "misses": self.misses, "joints": self.joints, "pck": {str(t): number(v) for t, v in self.pck.items()},
            "mean_error": number(self.mean_error),
            "per_landmark": {name: {"joints": s.joints, "pck": {str(t): number(v) for t, v in s.pck.items()},
                                    "mean_error": number(s.mean_error)} for name, s in self.per_landmark.items()},
            "coco": None if self.coco is None else {k: number(v) for k, v in self.coco.items()},
        }


# --------------------------------------------------------------------------- predictions

def crop_box(bbox: np.ndarray, width: int, height: int, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the person's box grown by ``margin`` a side, in whole pixels inside the image."""
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = max(0, math.floor(x - margin * w)), max(0, math.floor(y - margin * h))
    x1, y1 = min(width, math.ceil(x + w + margin * w)), min(height, math.ceil(y + h + margin * h))
    return x0, y0, x1, y1


def predict(people: list[LabelledPerson], landmarker: Landmarker,
            on_person: Callable[[int], None] | None = None, from_boxes: bool = False) -> list[Prediction]:
    """Each person's landmarks by the protocol: crop, one pose, back to image pixels; or, ``from_boxes``,
    the whole image with the labelled box given as the person's box (no detector)."""
    from ..io import read_image

    predictions = []
    image_path, image = None, None
    for done, person in enumerate(people, 1):
        if person.image != image_path:  # people of one image usually come together: read it once
            try:
                image_path, image = person.image, read_image(person.image)
            except PosepipeError as exc:
                raise PosepipeError(f"{person.image}: {exc}") from None
        if from_boxes:
            (x0, y0, x1, y1), poses = (0, 0, 0, 0), landmarker.detect(image, boxes=person.bbox[None])
        else:
            x0, y0, x1, y1 = crop_box(person.bbox, image.shape[1], image.shape[0])
            poses = landmarker.detect(image[y0:y1, x0:x1]) if x1 > x0 and y1 > y0 else None
        if poses is None or len(poses) == 0:
            predictions.append(Prediction(None))
        else:
            landmarks = poses.landmarks[0, :, :2].astype(np.float64) + (x0, y0)
            predictions.append(Prediction(landmarks, float(poses.scores[0])))
        if on_person:
            on_person(done)
    return predictions


# --------------------------------------------------------------------------- metrics

def normalised_errors(people: list[LabelledPerson], predictions: list[Prediction]) -> np.ndarray:
    """(persons, 33): distance to the label / person size; NaN unlabelled, inf for a missed person's joints."""
    errors = np.full((len(people), NUM_LANDMARKS), np.nan)
    for row, person, prediction in zip(errors, people, predictions):
        labelled = person.labelled
        if prediction.landmarks is None:
            row[labelled] = np.inf
            continue
        size = person_size(person)
        if not size > 0:
            raise PosepipeError(f"a labelled person in {person.image} has an empty box {person.bbox.tolist()}")
        distance = np.linalg.norm(prediction.landmarks[labelled] - person.keypoints[labelled], axis=1)
        row[labelled] = distance / size
    return errors


def _pck(errors: np.ndarray, thresholds: tuple[float, ...]) -> dict[float, float]:
    """Share of the (labelled, non-NaN) errors under each threshold; inf fails every one."""
    labelled = errors[~np.isnan(errors)]
    return {t: float((labelled < t).mean()) if labelled.size else math.nan for t in thresholds}


def _mean_finite(errors: np.ndarray) -> float:
    found = errors[np.isfinite(errors)]
    return float(found.mean()) if found.size else math.nan


def score(people: list[LabelledPerson], predictions: list[Prediction], name: str = "",
          thresholds: tuple[float, ...] = THRESHOLDS) -> EvaluationResult:
    """The metrics for given predictions (from :func:`predict`, or any other source)."""
    if len(people) != len(predictions):
        raise ValueError(f"{len(people)} people but {len(predictions)} predictions")
    if not people:
        raise PosepipeError("there are no labelled people to evaluate")
    errors = normalised_errors(people, predictions)
    labelled_anywhere = np.flatnonzero((~np.isnan(errors)).any(axis=0))
    per_landmark = {LANDMARK_NAMES[k]: LandmarkScore(int((~np.isnan(errors[:, k])).sum()),
                                                     _pck(errors[:, k], thresholds), _mean_finite(errors[:, k]))
                    for k in labelled_anywhere}
    return EvaluationResult(
        name=name, persons=len(people), misses=sum(p.landmarks is None for p in predictions),
        joints=int((~np.isnan(errors)).sum()), pck=_pck(errors, thresholds), mean_error=_mean_finite(errors),
        per_landmark=per_landmark, errors=errors, coco=coco_ap(people, predictions))


def coco_ap(people: list[LabelledPerson], predictions: list[Prediction]) -> dict[str, float] | None:
    """OKS AP, AP50 and AP75 (pycocotools) over the people that carry a COCO annotation; None
    when none does.

    Ground truth is built in memory from those people: their labelled COCO points (as
    ``labels.py`` read them: PoseTrack's head points, not COCO's, are left out), box, and the
    annotation's ``area`` (the box's area where the file has none, as PoseTrack's).
    """
    pairs = [(p, q) for p, q in zip(people, predictions) if p.coco_annotation is not None]
    if not pairs:
        return None
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise PosepipeError("OKS AP for COCO-format labels needs pycocotools: pip install 'posepipe[eval]'") from None

    coco_points = list(COCO_TO_BLAZEPOSE)
    images, annotations, results = {}, [], []
    for number, (person, prediction) in enumerate(pairs, 1):
        image_id = int(person.coco_image_id if person.coco_image_id is not None
                       else person.coco_annotation.get("image_id", 0))
        images[image_id] = {"id": image_id}
        labelled = person.labelled[coco_points]
        truth = np.zeros((len(coco_points), 3))
        truth[labelled, :2] = person.keypoints[coco_points][labelled]
        truth[labelled, 2] = 2
        x, y, w, h = (float(v) for v in person.bbox)
        annotations.append({"id": number, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": [x, y, w, h],
                            "area": float(person.coco_annotation.get("area") or w * h),
                            "keypoints": truth.ravel().tolist(), "num_keypoints": int(labelled.sum())})
        if prediction.landmarks is not None:
            points = np.nan_to_num(np.asarray(prediction.landmarks, np.float64)[coco_points])
            results.append({"image_id": image_id, "category_id": 1, "score": prediction.score,
                             "keypoints": np.concatenate([points, np.ones((len(points), 1))], axis=1).ravel().tolist()})
    if not results:  # every person missed (pycocotools cannot load an empty result list)
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    # pycocotools reports on stdout; keep it quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        truth_set = COCO()
        truth_set.dataset = {"images": list(images.values()), "annotations": annotations,
                             "categories": [{"id": 1, "name": "person"}]}
        truth_set.createIndex()
        evaluator = COCOeval(truth_set, truth_set.loadRes(results), "keypoints")
        evaluator.params.kpt_oks_sigmas = np.array(COCO_SIGMAS)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # stats: AP over OKS .5:.95, AP at .5, AP at .75 (-1 when nothing was scored).
    return {key: (float(v) if v >= 0 else math.nan) for key, v in zip(("AP", "AP50", "AP75"), evaluator.stats[:3])}


def evaluate(people: list[LabelledPerson], landmarker: Landmarker, name: str = "",
             on_person: Callable[[int], None] | None = None, from_boxes: bool = False) -> EvaluationResult:
    """Run ``landmarker`` (a :class:`~posepipe.PoseLandmarker`, one pose) on the people by the
    protocol (or from their labelled boxes, see :func:`predict`) and score it."""
    if not people:
        raise PosepipeError("there are no labelled people to evaluate")
    return score(people, predict(people, landmarker, on_person, from_boxes), name)


# --------------------------------------------------------------------------- several models

@dataclass(frozen=True)
class ModelSpec:
    """A landmark model to evaluate: ``default`` (MediaPipe's full model) or a ``.tflite``/``.onnx``
    path, with ``@backend`` after it to choose the runtime (``default@litert``)."""

    name: str  # as written
    landmark_model: Path | None  # None: MediaPipe's full landmark model
    backend: str = "auto"


def parse_model_spec(text: str, backend: str = "auto") -> ModelSpec:
    """``default``, ``PATH``, ``default@BACKEND`` or ``PATH@BACKEND``; ``backend`` where none is named."""
    from ..models.runtime import BACKENDS

    model, at, named = text.rpartition("@")
    if at and named in BACKENDS:
        backend = named
    elif at and not Path(text).exists():
        raise PosepipeError(f"the model {text!r} names an unknown backend {named!r}; "
                            f"after @ choose one of {', '.join(BACKENDS)}")
    else:
        model = text
    if not model:
        raise PosepipeError(f"the model {text!r} names no model before the @")
    return ModelSpec(text, None if model == DEFAULT_MODEL else Path(model), backend)


def compare(people: list[LabelledPerson], specs: list[ModelSpec], options=None,
            on_person: Callable[[str, int], None] | None = None, from_boxes: bool = False) -> list[EvaluationResult]:
    """Evaluate several landmark models on the same people, one result each, in order.

    ``options``: a :class:`~posepipe.PoseLandmarkerOptions` for everything but the landmark
    model and backend (detector, thresholds, threads, accurate); the protocol's one pose is imposed.
    ``from_boxes``: each person's labelled box is given (see :func:`predict`).
    Every model is opened before any runs, so a bad one fails at once.
    """
    from ..models.assets import LANDMARK_FULL, ensure_default_models
    from ..pipeline import PoseLandmarker, PoseLandmarkerOptions

    if not people:
        raise PosepipeError("there are no labelled people to evaluate")
    base = options or PoseLandmarkerOptions()
    results = []
    with contextlib.ExitStack() as stack:
        landmarkers = []
        for spec in specs:
            path = spec.landmark_model or ensure_default_models() / LANDMARK_FULL.filename
            landmarkers.append(stack.enter_context(PoseLandmarker(
                replace(base, num_poses=1, landmark_model=path, backend=spec.backend))))
        for spec, landmarker in zip(specs, landmarkers):
            tick = (lambda done, n=spec.name: on_person(n, done)) if on_person else None
            result = evaluate(people, landmarker, spec.name, tick, from_boxes)
            result.model = str(landmarker.options.landmark_model)
            result.backend = type(landmarker.landmark_model.model).__name__.removesuffix("Model").lower()
            results.append(result)
    return results
