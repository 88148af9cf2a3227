"""The accurate mode: more of the landmark model where MediaPipe's pipeline gives up early.

MediaPipe runs the landmark model once per person, on the crop its face-based detector
proposes, and finds nobody when the detector does. :func:`accurate_people` spends a few more
model runs per photo (``bench/accurate.py`` measures each technique; ``docs/accuracy.md``
has the figures):

- **refinement**: the landmark model's two auxiliary points give a better crop than the
  detector's (MediaPipe uses them for the next video frame); run again on it while the crop
  still moves;
- **flip averaging**: the crop mirrored, its left and right landmarks swapped back, averaged
  with the original by visibility;
- **fallback regions**: when the detector finds nobody, the whole image (or a given box) at
  a few scales, keeping the crop whose pose is most present;
- **duplicate suppression**: two crops that settle on one person give one pose;
- **agreeing crops averaged** (given boxes): the box's candidate crops whose poses agree with
  the chosen one are averaged into it.

All the recipe's numbers are in :class:`AccurateRecipe`; :data:`RECIPE` is the one used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .detector import PoseDetector, box_iou, letterbox_roi
from .landmarks import INPUT_SIZE, NUM_MODEL_LANDMARKS, LandmarkModel, LandmarkOutput
from .roi import ROI_SCALE, RegionOfInterest, roi_from_alignment_points
from .topology import FLIP_INDEX


@dataclass(frozen=True)
class AccurateRecipe:
    """What the accurate mode does; each field switches or sizes one technique. The defaults are
    what measured best (``docs/accuracy.md``); the techniques switched off measured no gain."""

    refine_passes: int = 2  # landmark passes after the first, each on the crop the previous one's auxiliary points give
    min_shift: float = 0.05  # stop refining once the crop moves less than this share of its side
    candidates: int = 3  # detections tried per pose wanted; the most prominent poses are kept
    duplicate_iou: float = 0.5  # poses whose landmark boxes overlap more than this are one person
    # When nobody is present where the detector looked (or it found nobody): the whole image's
    # square at these scales, each turned by these quarter turns; the most present pose is kept.
    fallback_scales: tuple[float, ...] = (1.0, 0.75)
    fallback_turns: tuple[int, ...] = (0, 1, 3)
    whole_always: bool = False  # try the whole image even when the detector found someone present
    box_scales: tuple[float, ...] = (1.0, 1.25, 1.5)  # a given box's crop: ROI_SCALE × its longer side × each
    box_detector: bool = True  # with given boxes, also the detector's people inside each box as candidates
    # With given boxes, the candidates whose landmarks agree with the chosen pose (median distance under this
    # share of its landmarks' box diagonal) are averaged into it by visibility: several crops' views of one
    # person, their errors partly independent. 0 switches it off.
    agree_within: float = 0.05
    flip: bool = False  # average every landmark pass with its mirrored crop (no gain: BlazePose's mirrored view is worse)
    detector_turns: tuple[int, ...] = ()  # quarter turns of the image for the detector when it finds nobody upright
    detector_mirror: bool = False  # the mirrored image for the detector when it finds nobody


RECIPE = AccurateRecipe()

# The mirrored crop's landmark k is the original's FLIP_INDEX[k]; the auxiliary and unused points keep their place.
FLIP_ORDER = np.array(list(FLIP_INDEX) + list(range(len(FLIP_INDEX), NUM_MODEL_LANDMARKS)))
# A crop pixel column c shows what column INPUT_SIZE - 1 - c shows in the mirror (crop samples sit on whole
# tensor coordinates, roi.py), so a normalised x comes back as MIRROR_X - x. Measured on the labelled crops, the
# model's own axis is within half a crop pixel of this (x + mirrored x: 0.9996 raw, 0.998 after the heatmap refinement).
MIRROR_X = (INPUT_SIZE - 1) / INPUT_SIZE


@dataclass
class Person:
    """One pose the accurate path found."""

    output: LandmarkOutput
    roi: RegionOfInterest  # the crop the pose was read from (the last refinement's)
    source: int = -1  # the given box's index, -1 for a detected person


def unflip(decoded: np.ndarray, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A mirrored crop's crop-space results (``LandmarkModel.decode``) as the unmirrored crop's:
    sides swapped, x reflected."""
    decoded, world = decoded[..., FLIP_ORDER, :].copy(), world[..., FLIP_ORDER, :].copy()
    decoded[..., 0] = MIRROR_X - decoded[..., 0]
    world[..., 0] = -world[..., 0]
    return decoded, world


def average_by_visibility(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two crop-space results (..., 39, 5) as one: positions weighted by each one's visibility,
    visibility and presence the plain mean."""
    wa, wb = a[..., 3:4] + 1e-6, b[..., 3:4] + 1e-6
    out = (a + b) / 2
    out[..., :3] = (a[..., :3] * wa + b[..., :3] * wb) / (wa + wb)
    return out


def run_crops(model: LandmarkModel, image: np.ndarray, rois: list[RegionOfInterest], flip: bool,
              with_mask: bool) -> list[LandmarkOutput]:
    """The landmark model on each crop (with its mirror image when ``flip``), in image coordinates."""
    height, width = image.shape[:2]
    batch = model.preprocess(image, rois)
    if flip:
        batch = np.concatenate([batch, np.ascontiguousarray(batch[..., ::-1])])
    outputs = model.infer(batch)
    decoded, world = model.decode(outputs)
    flags, masks = outputs[1][:, 0], outputs[2]
    n = len(rois)
    if flip:
        mirrored, mirrored_world = unflip(decoded[n:], world[n:])
        decoded = average_by_visibility(decoded[:n], mirrored)
        world = (world[:n] + mirrored_world) / 2  # no visibility weights: world points carry none of their own
        flags = (flags[:n] + flags[n:]) / 2
        if with_mask:
            masks = (masks[:n] + masks[n:, :, :, ::-1]) / 2
    return [model.to_image(decoded[i], world[i], flags[i], masks[i, 0] if with_mask else None, roi, (width, height))
            for i, roi in enumerate(rois)]


def roi_shift(a: RegionOfInterest, b: RegionOfInterest) -> float:
    """How far crop ``b`` is from crop ``a``, as a share of ``a``'s side: the centre's move plus the
    side's change plus the corners' swing from the turn."""
    turn = abs(math.remainder(b.rotation - a.rotation, 2 * math.pi))
    return (math.hypot(b.x - a.x, b.y - a.y) + abs(b.size - a.size)) / a.size + turn / 2


def refine(model: LandmarkModel, image: np.ndarray, people: list[Person], recipe: AccurateRecipe,
           min_presence: float, with_mask: bool) -> list[Person]:
    """Run each person again on the crop their auxiliary points give, while the crop moves;
    a pass whose pose is no longer present keeps the previous one."""
    moving = list(range(len(people)))
    for _ in range(recipe.refine_passes):
        rois = {}
        for i in moving:
            aux = people[i].output.auxiliary
            roi = roi_from_alignment_points(aux[0, :2], aux[1, :2])
            if roi.size > 0 and roi_shift(people[i].roi, roi) >= recipe.min_shift:
                rois[i] = roi
        if not rois:
            break
        outputs = run_crops(model, image, list(rois.values()), recipe.flip, with_mask)
        moving = []
        for (i, roi), output in zip(rois.items(), outputs):
            if output.score > min_presence:
                people[i] = Person(output, roi, people[i].source)
                moving.append(i)
    return people


def best_of(model: LandmarkModel, image: np.ndarray, rois: list[RegionOfInterest], with_mask: bool) -> Person:
    """The crop, among ``rois``, whose pose is most present."""
    outputs = run_crops(model, image, rois, False, with_mask)
    best = int(np.argmax([o.score for o in outputs]))
    return Person(outputs[best], rois[best])


def box_rois(box: np.ndarray, scales: tuple[float, ...]) -> list[RegionOfInterest]:
    """Upright squares around a person's box [x, y, w, h], the side ``ROI_SCALE`` × its longer side × each scale."""
    x, y, w, h = (float(v) for v in box)
    return [RegionOfInterest(x + w / 2, y + h / 2, max(w, h) * ROI_SCALE * s, 0.0) for s in scales]


def drop_duplicates(people: list[Person], iou: float) -> list[Person]:
    """Keep the first of any poses whose landmark boxes overlap more than ``iou`` (callers order by preference)."""
    kept, boxes = [], []
    for person in people:
        xy = person.output.landmarks[:, :2]
        box = np.concatenate([xy.min(0), xy.max(0)])
        if boxes and box_iou(box, np.array(boxes)).max() > iou:
            continue
        kept.append(person)
        boxes.append(box)
    return kept


def turned_back(points: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """(..., 2) pixel points of ``np.rot90(image, turns)`` as points of ``image`` (``width`` × ``height``)."""
    x, y = points[..., 0], points[..., 1]
    back = {1: (width - 1 - y, x), 2: (width - 1 - x, height - 1 - y), 3: (y, height - 1 - x)}[turns % 4]
    return np.stack(back, axis=-1)


def detect_harder(detector: PoseDetector, image: np.ndarray, recipe: AccurateRecipe) -> np.ndarray:
    """Detector keypoints (N, 4, 2) in ``image``'s pixels from its turned and mirrored versions, the
    first that finds anyone (an empty array when none does)."""
    height, width = image.shape[:2]
    for turns in recipe.detector_turns:
        found = detector.detect(np.ascontiguousarray(np.rot90(image, turns)))
        if len(found):
            return turned_back(found.keypoints, turns, width, height)
    if recipe.detector_mirror:
        found = detector.detect(np.ascontiguousarray(image[:, ::-1]))
        if len(found):
            keypoints = found.keypoints.copy()
            keypoints[..., 0] = width - 1 - keypoints[..., 0]
            return keypoints
    return np.zeros((0, 4, 2), np.float32)


def accurate_people(detector: PoseDetector, model: LandmarkModel, image: np.ndarray, num_poses: int,
                    min_presence: float, with_mask: bool, recipe: AccurateRecipe = RECIPE) -> list[Person]:
    """Up to ``num_poses`` people in ``image``, best first (see the module docstring)."""
    height, width = image.shape[:2]
    keypoints = detector.detect(image).keypoints
    if len(keypoints) == 0:
        keypoints = detect_harder(detector, image, recipe)
    rois = [roi_from_alignment_points(kp[0], kp[1]) for kp in keypoints[: num_poses * recipe.candidates]]
    people = [Person(o, r) for o, r in zip(run_crops(model, image, rois, recipe.flip, with_mask), rois)] if rois else []
    people = [p for p in people if p.output.score > min_presence]
    if (not people or recipe.whole_always) and recipe.fallback_scales:  # nobody detected, or nobody present where the detector looked
        whole = letterbox_roi(width, height)
        person = best_of(model, image, [RegionOfInterest(whole.x, whole.y, whole.size * s, t * math.pi / 2)
                                        for s in recipe.fallback_scales for t in recipe.fallback_turns], with_mask)
        people = people + [person] if person.output.score > min_presence else people
    people = refine(model, image, people, recipe, min_presence, with_mask)
    people = drop_duplicates(people, recipe.duplicate_iou)
    if recipe.candidates > 1:
        people.sort(key=lambda p: -prominence(p.output, width, height))
    return people[:num_poses]


def prominence(output: LandmarkOutput, width: int, height: int) -> float:
    """How much of the picture a pose takes: the area of its landmarks' box inside the image
    (as a share of the image) × its presence."""
    xy = np.clip(output.landmarks[:, :2], 0, [width, height])
    return float(np.prod(xy.max(0) - xy.min(0)) / (width * height) * output.score)


def people_in_boxes(detector: PoseDetector, model: LandmarkModel, image: np.ndarray, boxes: np.ndarray, min_presence: float,
                    with_mask: bool, accurate: bool, recipe: AccurateRecipe = RECIPE) -> list[Person]:
    """One pose per given box [x, y, w, h] where one is present, in box order.

    Plainly: one upright crop per box. Accurate: the box at ``recipe.box_scales`` and the
    detector's people inside it as candidates, each refined; the pose that fills the box best is kept.
    """
    if len(boxes) == 0:
        return []
    if not accurate:
        rois = [box_rois(box, (1.0,))[0] for box in boxes]
        people = [Person(o, r, i) for i, (o, r) in enumerate(zip(run_crops(model, image, rois, False, with_mask), rois))]
        return [p for p in people if p.output.score > min_presence]
    people = []
    for index, box in enumerate(boxes):
        rois = box_rois(box, recipe.box_scales)
        if recipe.box_detector:
            rois += detected_in_box(detector, image, box)
        candidates = [Person(o, r, index) for o, r in zip(run_crops(model, image, rois, recipe.flip, with_mask), rois)]
        candidates = refine(model, image, [c for c in candidates if c.output.score > min_presence], recipe,
                            min_presence, with_mask)
        # The detector looks beyond the box (the margin): a pose centred outside it is someone else's.
        candidates = [c for c in candidates if centred_in(c.output.landmarks, box)]
        if candidates:
            chosen = max(candidates, key=lambda c: box_fit(c.output.landmarks, box))
            people.append(average_agreeing(chosen, candidates, recipe.agree_within))
    return people


def average_agreeing(chosen: Person, candidates: list[Person], within: float) -> Person:
    """``chosen`` with its landmarks and world landmarks averaged, by visibility, with those of the
    candidates whose landmarks agree with it: median distance under ``within`` × the diagonal of its
    landmarks' box. Confidences, auxiliary points and mask stay ``chosen``'s."""
    xy = chosen.output.landmarks[:, :2]
    diagonal = float(np.linalg.norm(xy.max(0) - xy.min(0)))
    agreeing = [c.output for c in candidates if c is not chosen and diagonal > 0
                and np.median(np.linalg.norm(c.output.landmarks[:, :2] - xy, axis=1)) < within * diagonal]
    if not agreeing:
        return chosen
    outputs = [chosen.output] + agreeing
    weights = np.stack([o.visibility for o in outputs])[..., None] + 1e-6  # (views, 33, 1)
    landmarks = (np.stack([o.landmarks for o in outputs]) * weights).sum(0) / weights.sum(0)
    world = (np.stack([o.world for o in outputs]) * weights).sum(0) / weights.sum(0)
    output = replace(chosen.output, landmarks=landmarks.astype(np.float32), world=world.astype(np.float32))
    return Person(output, chosen.roi, chosen.source)


def centred_in(landmarks: np.ndarray, box: np.ndarray) -> bool:
    """Whether the centre of a pose's landmarks' box lies inside a box [x, y, w, h]."""
    xy = landmarks[:, :2]
    cx, cy = (xy.min(0) + xy.max(0)) / 2
    x, y, w, h = (float(v) for v in box)
    return bool(x <= cx <= x + w and y <= cy <= y + h)


def box_fit(landmarks: np.ndarray, box: np.ndarray) -> float:
    """How well a pose fills a given box [x, y, w, h]: the IoU of its landmarks' box with it."""
    x, y, w, h = (float(v) for v in box)
    xy = landmarks[:, :2]
    return float(box_iou(np.concatenate([xy.min(0), xy.max(0)]), np.array([[x, y, x + w, y + h]]))[0])


def detected_in_box(detector: PoseDetector, image: np.ndarray, box: np.ndarray, margin: float = 0.25
                    ) -> list[RegionOfInterest]:
    """The detector's crops for the people it finds in the box grown by ``margin`` a side."""
    height, width = image.shape[:2]
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, int(x - margin * w)), max(0, int(y - margin * h))
    x1, y1 = min(width, int(math.ceil(x + w + margin * w))), min(height, int(math.ceil(y + h + margin * h)))
    if x1 <= x0 or y1 <= y0:
        return []
    keypoints = detector.detect(np.ascontiguousarray(image[y0:y1, x0:x1])).keypoints + (x0, y0)
    return [roi_from_alignment_points(kp[0], kp[1]) for kp in keypoints[:2]]
