"""Training samples: each labelled person cropped exactly as inference crops, with augmentation.

The crop is :func:`posepipe.roi.warp_crop` on a :class:`~posepipe.roi.RegionOfInterest`,
the code inference runs, so the network trains on the sampling it will see. Geometric
augmentation (rotation, scale, shift) moves the ROI rather than the pixels, for the same
reason; flips, colour, blur and occlusion then act on the 256×256 crop.

Targets are in the landmark model's own units: x, y normalised to the crop (0 and 1 at its
edges; the image→tensor map of roi.py divided by the input size), the units its output is
decoded in. Only numpy and OpenCV are needed: :class:`CropDataset` returns dicts of numpy
arrays, which torch's ``DataLoader`` collates into tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ImageError, PosepipeError
from ..analysis.labels import LabelledPerson, person_size
from ..roi import ROI_SCALE, RegionOfInterest, normalize_radians, roi_from_alignment_points, warp_crop
from ..topology import FLIP_INDEX, LANDMARK_INDEX

INPUT_SIZE = 256
LEFT_HIP, RIGHT_HIP = LANDMARK_INDEX["left_hip"], LANDMARK_INDEX["right_hip"]
LEFT_SHOULDER, RIGHT_SHOULDER = LANDMARK_INDEX["left_shoulder"], LANDMARK_INDEX["right_shoulder"]
# Smallest crop side in pixels, for a person labelled by a single point and no box.
MIN_ROI_SIZE = 16.0
# Targets further out than this (in crop units) get no weight: the crop shows nothing of them.
TARGET_RANGE = (-0.5, 1.5)


def roi_for_person(person: LabelledPerson) -> RegionOfInterest:
    """The crop a labelled person is trained on.

    A pseudo-label's own crop (``person.roi``) when it has one: the teacher saw that crop.
    Otherwise a crop shaped like MediaPipe's (centre on the hip midpoint, side 2 · r · 1.25,
    hips → shoulders pointing up):

    - centre: the midpoint of the hips when both are labelled, else the box's centre;
    - r: the distance from the centre to the farthest labelled point, and at least half
      the person's size (the box's longer side), so every labelled point lies inside the
      crop with a 25 % margin whatever the rotation; for a standing person's COCO box this
      is MediaPipe's proportion (side 1.25 × height, hips in the middle);
    - rotation: so that the hip midpoint → shoulder midpoint vector points up, when both
      hips and both shoulders are labelled; else upright (0).
    """
    if person.roi is not None:
        return person.roi
    labelled = person.labelled
    points = person.keypoints[labelled].astype(np.float64)
    x, y, w, h = (float(v) for v in person.bbox)
    if labelled[LEFT_HIP] and labelled[RIGHT_HIP]:
        centre = (person.keypoints[LEFT_HIP] + person.keypoints[RIGHT_HIP]).astype(np.float64) / 2
    else:
        centre = np.array([x + w / 2, y + h / 2])
    reach = max(float(np.linalg.norm(points - centre, axis=1).max(initial=0.0)), person_size(person) / 2)
    size = max(2 * reach * ROI_SCALE, MIN_ROI_SIZE)
    rotation = 0.0
    if labelled[[LEFT_HIP, RIGHT_HIP, LEFT_SHOULDER, RIGHT_SHOULDER]].all():
        shoulders = (person.keypoints[LEFT_SHOULDER] + person.keypoints[RIGHT_SHOULDER]).astype(np.float64) / 2
        if np.linalg.norm(shoulders - centre) > 0:
            rotation = roi_from_alignment_points(centre, shoulders).rotation
    return RegionOfInterest(float(centre[0]), float(centre[1]), size, rotation)


@dataclass(frozen=True)
class Augmentation:
    """Random changes per sample. Ranges: ``rotation_deg`` (± degrees), ``scale`` (crop side
    factor), ``shift`` (± share of the crop side, each axis). Probabilities: ``flip``
    (horizontal), ``blur`` (Gaussian, σ 0.5–2 px), ``occlusion`` (a rectangle of 10–40 % of
    the side in a random colour). ``colour`` is the jitter strength: brightness, contrast
    and saturation factors in [1 − colour, 1 + colour] (torchvision's ColorJitter)."""

    rotation_deg: float = 30.0
    scale: tuple[float, float] = (0.8, 1.2)
    shift: float = 0.1
    flip: float = 0.5
    colour: float = 0.3
    blur: float = 0.2
    occlusion: float = 0.3

    @classmethod
    def none(cls) -> "Augmentation":
        """No change at all (validation): the plain crop."""
        return cls(0.0, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, 0.0)

    def perturb(self, roi: RegionOfInterest, rng: np.random.Generator) -> RegionOfInterest:
        angle = math.radians(rng.uniform(-self.rotation_deg, self.rotation_deg))
        size = roi.size * rng.uniform(*self.scale)
        dx, dy = rng.uniform(-self.shift, self.shift, size=2) * roi.size
        return RegionOfInterest(roi.x + dx, roi.y + dy, size, normalize_radians(roi.rotation + angle))


def jitter_colour(crop: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation, each by a factor in [1 − strength, 1 + strength]."""
    b, c, s = rng.uniform(1 - strength, 1 + strength, size=3)
    image = crop.astype(np.float32) * b
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    image = (image - grey.mean()) * c + grey.mean()
    grey = (image @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    image = (image - grey) * s + grey
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def occlude(crop: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint a rectangle over the crop (in place); returns which targets it hides."""
    size = crop.shape[0]
    w, h = (rng.uniform(0.1, 0.4, size=2) * size).astype(int)
    x0, y0 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
    crop[y0:y0 + h, x0:x0 + w] = rng.integers(0, 256, size=3, dtype=np.uint8)
    px = targets * size  # pixel j shows target j / size
    with np.errstate(invalid="ignore"):
        return (px[:, 0] >= x0 - 0.5) & (px[:, 0] < x0 + w - 0.5) & (px[:, 1] >= y0 - 0.5) & (px[:, 1] < y0 + h - 0.5)


class CropDataset:
    """Labelled people as training samples (``len``/indexing, for torch's ``DataLoader``).

    ``dataset[i]`` depends only on (``seed``, the epoch set by :meth:`set_epoch`, ``i``), so a
    resumed run sees the same samples. Each sample is a dict:

    - ``image`` float32 (3, S, S) in [0, 1], as ``LandmarkModel.preprocess`` makes it;
    - ``keypoints`` float32 (33, 2): target x, y in crop units, [0, 1] across the crop;
    - ``weight`` float32 (33,): 1 where labelled and within ``TARGET_RANGE`` of the crop;
    - ``visibility`` float32 (33,) target and ``visibility_weight`` (33,), 0 where unknown;
      an occluding rectangle makes the points under it labelled invisible (0, weight 1);
    - ``size`` float32: the person's size (:func:`person_size`) in crop units, for PCK;
    - ``index``: ``i``.

    Images are read once and kept (``cache_images``), for small datasets.
    """

    def __init__(self, people: list[LabelledPerson], augmentation: Augmentation | None = None, seed: int = 0,
                 input_size: int = INPUT_SIZE, cache_images: bool = True):
        self.people = list(people)
        self.augmentation = augmentation
        self.seed = seed
        self.input_size = input_size
        self.cache_images = cache_images
        self.epoch = 0
        self._images: dict[Path, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.people)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def image(self, path: Path) -> np.ndarray:
        from ..io import read_image

        if path in self._images:
            return self._images[path]
        try:
            image = read_image(path)
        except ImageError as exc:
            raise PosepipeError(f"{path}: {exc}") from None
        if self.cache_images:
            self._images[path] = image
        return image

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.people):
            raise IndexError(index)
        person = self.people[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        aug = self.augmentation
        roi = roi_for_person(person)
        if aug is not None:
            roi = aug.perturb(roi, rng)
        s = self.input_size
        crop = warp_crop(self.image(person.image), roi, s)
        matrix = roi.image_to_tensor(s)
        targets = (person.keypoints.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]) / s
        labelled = person.labelled.copy()
        visibility = person.visibility.copy()
        if aug is not None and rng.random() < aug.flip:
            # Pixel j shows target j / s, so mirroring pixels j → s − 1 − j maps x → (s − 1) / s − x.
            crop = np.ascontiguousarray(crop[:, ::-1])
            targets[:, 0] = (s - 1) / s - targets[:, 0]
            flip = list(FLIP_INDEX)
            targets, labelled, visibility = targets[flip], labelled[flip], visibility[flip]
        if aug is not None and aug.colour > 0:
            crop = jitter_colour(crop, aug.colour, rng)
        if aug is not None and rng.random() < aug.blur:
            crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.5, 2.0))
        if aug is not None and rng.random() < aug.occlusion:
            visibility[occlude(crop, targets, rng) & labelled] = 0.0
        low, high = TARGET_RANGE
        inside = np.all((targets >= low) & (targets <= high), axis=1)
        image = np.empty((3, s, s), np.float32)
        np.multiply(crop.transpose(2, 0, 1), np.float32(1 / 255), out=image)
        known = ~np.isnan(visibility)
        return {
            "image": image,
            "keypoints": np.nan_to_num(targets, nan=0.0).astype(np.float32),
            "weight": (labelled & inside).astype(np.float32),
            "visibility": np.where(known, visibility, 0.0).astype(np.float32),
            "visibility_weight": known.astype(np.float32),
            "size": np.float32(person_size(person) / roi.size),
            "index": index,
        }


def split_people(people: list[LabelledPerson], val_fraction: float, seed: int = 0
                 ) -> tuple[list[LabelledPerson], list[LabelledPerson]]:
    """(train, validation) held out by image: all people of an image fall on one side.

    Deterministic for a seed and a set of images (their order in ``people`` does not
    matter); each side keeps the people's order. At least one image goes to each side when
    there are two or more and ``0 < val_fraction < 1``.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise PosepipeError(f"the validation fraction must be between 0 and 1, not {val_fraction}")
    images = sorted({str(p.image) for p in people})
    order = np.random.default_rng(seed).permutation(len(images))
    count = round(val_fraction * len(images))
    if 0 < val_fraction < 1 and len(images) >= 2:
        count = min(max(count, 1), len(images) - 1)
    held_out = {images[i] for i in order[:count]}
    return ([p for p in people if str(p.image) not in held_out], [p for p in people if str(p.image) in held_out])
