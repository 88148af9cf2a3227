"""Stage 2, regions of interest: detection → rotated square, and the affine maps around it.

All geometry is in image pixels. A :class:`RegionOfInterest` is a square of side ``size``
centred on ``(x, y)`` and turned by ``rotation`` radians (clockwise on screen, y down), the
same convention as MediaPipe's ``NormalizedRect`` once its normalised width/height are
multiplied out: after ``square_long`` every pose ROI is square in pixels.

The crop maps the square's corners onto the tensor's corners (MediaPipe's
ImageToTensorCalculator: ``boxPoints`` → ``getPerspectiveTransform``), so a tensor of side
``S`` samples at integer tensor coordinates ``t`` the image point
``p = centre + size / S * R(rotation) @ (t - S / 2)``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import cv2
import numpy as np

# From pose_detection_to_roi.pbtxt / pose_landmarks_to_roi.pbtxt (RectTransformationCalculator).
ROI_SCALE = 1.25
TARGET_ANGLE = math.pi / 2  # rotation_vector_target_angle_degrees: 90


def normalize_radians(angle: float) -> float:
    """Wrap to [-pi, pi), as MediaPipe's NormalizeRadians."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


@dataclass(frozen=True)
class RegionOfInterest:
    x: float
    y: float
    size: float
    rotation: float = 0.0

    def rotation_matrix(self) -> np.ndarray:
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        return np.array([[c, -s], [s, c]], dtype=np.float64)

    def image_to_tensor(self, tensor_size: int) -> np.ndarray:
        """2×3 affine matrix: image pixels → tensor pixels."""
        scale = tensor_size / self.size
        rot_t = self.rotation_matrix().T * scale
        shift = tensor_size / 2 - rot_t @ np.array([self.x, self.y])
        return np.hstack([rot_t, shift[:, None]])

    def tensor_to_image_matrix(self, tensor_size: float) -> np.ndarray:
        """2×3 affine matrix: tensor pixels (a tensor ``tensor_size`` wide) → image pixels."""
        scale = self.size / tensor_size
        rot = self.rotation_matrix() * scale
        shift = np.array([self.x, self.y]) - rot @ np.array([tensor_size / 2, tensor_size / 2])
        return np.hstack([rot, shift[:, None]])

    def tensor_to_image(self, tensor_size: float) -> Callable[[np.ndarray], np.ndarray]:
        """A function mapping (N, 2) tensor points to (N, 2) image points."""
        m = self.tensor_to_image_matrix(tensor_size)
        return lambda pts: np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]

    def corners(self) -> np.ndarray:
        """(4, 2) image points: top-left, top-right, bottom-right, bottom-left of the crop."""
        return self.tensor_to_image(1.0)(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64))

    def as_array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.size, self.rotation], np.float32)


def roi_from_alignment_points(centre: np.ndarray, scale_point: np.ndarray, scale: float = ROI_SCALE) -> RegionOfInterest:
    """MediaPipe's AlignmentPointsRectsCalculator + RectTransformationCalculator(square_long).

    The square is centred on ``centre`` with side ``2 * |scale_point - centre| * scale``,
    rotated so that the centre → scale_point vector points up (target angle 90°).
    Detector keypoints 0 and 1 (mid-hip, body-size point) and the landmark model's
    auxiliary landmarks 33 and 34 both use this rule.
    """
    x0, y0 = float(centre[0]), float(centre[1])
    x1, y1 = float(scale_point[0]), float(scale_point[1])
    side = 2 * math.hypot(x1 - x0, y1 - y0) * scale
    rotation = normalize_radians(TARGET_ANGLE - math.atan2(-(y1 - y0), x1 - x0))
    return RegionOfInterest(x0, y0, side, rotation)


def crop_matrix(roi: RegionOfInterest, tensor_size: int) -> np.ndarray:
    """3×3 image → tensor matrix built the way MediaPipe's OpenCV converter builds it.

    Corners from ``cv2.boxPoints`` in float32 mapped onto the tensor corners by
    ``cv2.getPerspectiveTransform``. Mathematically this is :meth:`image_to_tensor`; the
    float32 rounding of the corners is kept on purpose, because the landmark network is
    sensitive to sub-pixel shifts of its input and parity with MediaPipe is the goal.
    """
    angle = float(np.float32(roi.rotation) * np.float32(180.0) / np.float32(math.pi))
    corners = cv2.boxPoints(((float(np.float32(roi.x)), float(np.float32(roi.y))),
                             (float(np.float32(roi.size)), float(np.float32(roi.size))), angle)).astype(np.float32)
    s = float(tensor_size)
    targets = np.array([[0, s], [0, 0], [s, 0], [s, s]], np.float32)
    return cv2.getPerspectiveTransform(corners, targets)


@lru_cache(maxsize=4)
def _tensor_axis(tensor_size: int) -> np.ndarray:
    return np.arange(tensor_size, dtype=np.float64)


class _MapBuffers:
    """One thread's work arrays for :func:`sampling_maps` at one tensor size, kept from crop to
    crop: fresh arrays this size come from mmap, and their page faults cost more than the
    arithmetic (about 1.5 against 0.4 ms a crop)."""

    def __init__(self, size: int):
        self.w = np.empty((size, size), np.float64)
        self.fixed = np.empty((2, size, size), np.float64)
        self.coords = np.empty((2, size, size), np.int32)
        self.map1 = np.empty((size, size, 2), np.int16)
        self.map2 = np.empty((size, size), np.uint16)


_buffers = threading.local()


def _map_buffers(size: int) -> _MapBuffers:
    """This thread's arrays for ``size`` (the detector's 224 and the landmark model's 256 alternate)."""
    kept = getattr(_buffers, "by_size", None)
    if kept is None:
        kept = _buffers.by_size = {}
    if size not in kept:
        kept[size] = _MapBuffers(size)
    return kept[size]


def sampling_maps(matrix: np.ndarray, tensor_size: int, reuse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point ``cv2.remap`` maps for an image → tensor perspective matrix.

    OpenCV before 4.11 (the one built into MediaPipe) rounded every source coordinate to
    1/32 pixel and interpolated with 15-bit integer weights; newer OpenCV samples exactly.
    The difference is invisible to the eye but moves BlazePose's landmarks by up to a few
    pixels, so we rebuild the old sampling: integer coordinates in ``map1``, the 1/32
    fractions as a table index in ``map2`` (remap then uses the same integer weights).
    This runs once per person per frame, on the tracking loop's critical path, hence the
    outer sums, the in-place arithmetic in this thread's kept arrays, and the ranges checked
    on the grid's corners. ``reuse``: return the kept maps themselves, valid until this
    thread's next call (for a caller that uses them at once).
    """
    buffers = _map_buffers(tensor_size)
    inv = np.linalg.inv(matrix)
    axis = _tensor_axis(tensor_size)
    if inv[0, 1] == 0 and inv[1, 0] == 0 and inv[2, 0] == 0 and inv[2, 1] == 0 and inv[2, 2] == 1:
        maps = _axis_aligned_maps(inv, axis, buffers)  # the detector's letterbox, mostly
        if maps is not None:
            return maps if reuse else (maps[0].copy(), maps[1].copy())
    # OpenCV's order of operations, (m0 * x + m1 * y) + m2, so that the rounding is the same;
    # the outer sum of the y column and the x row adds the same two products (a + b == b + a).
    w = np.add.outer(inv[2, 1] * axis, inv[2, 0] * axis, out=buffers.w)
    w += inv[2, 2]
    # Where w keeps one sign over the grid, x / w and y / w are extreme at its corners, so the
    # corners say whether anything needs clipping (the usual case: nothing does).
    corners_w = w[[0, 0, -1, -1], [0, -1, 0, -1]]
    one_sign = bool((corners_w > 0).all() or (corners_w < 0).all())
    zero = w == 0
    if zero.any():
        w[zero] = np.inf  # 32 / inf = 0: OpenCV's W ? 32 / W : 0
    np.divide(32.0, w, out=w)
    fixed, coords, map1, map2 = buffers.fixed, buffers.coords, buffers.map1, buffers.map2
    for row in (0, 1):
        c = np.add.outer(inv[row, 1] * axis, inv[row, 0] * axis, out=fixed[row])
        c += inv[row, 2]
        c *= w
    np.rint(fixed, out=fixed)
    corners = fixed[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    # 32 px short of int16's range: rounding may put an inner point an ulp past the corners.
    clip = not one_sign or np.abs(corners).max() >= (32767 - 32) * 32
    if clip:  # only a crop far outside the image
        np.clip(fixed, -2.0**31, 2.0**31 - 1, out=fixed)
    np.copyto(coords, fixed, casting="unsafe")  # whole numbers already: the cast is exact
    wholes = np.moveaxis(map1, -1, 0)  # map1 seen as (2, S, S), like coords
    if clip:
        np.copyto(wholes, np.clip(coords >> 5, -32768, 32767), casting="unsafe")
    else:
        np.right_shift(coords, 5, out=wholes, casting="unsafe")  # within int16, as the corners say
    coords &= 31
    x, y = coords
    y <<= 5
    np.bitwise_or(y, x, out=map2, casting="unsafe")  # under 1024: fits
    return (map1, map2) if reuse else (map1.copy(), map2.copy())


def _axis_aligned_maps(inv: np.ndarray, axis: np.ndarray, buffers: _MapBuffers) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`sampling_maps` where the matrix only scales and shifts each axis (its other
    entries exactly 0, W exactly 1): a source column depends on the tensor column alone, a
    source row on the tensor row, so each is computed once and spread. The same operations
    as the general rule, less terms that are exactly zero, hence the same numbers. None where
    anything would need clipping (the general rule clips)."""
    columns = np.rint((inv[0, 0] * axis + inv[0, 2]) * 32.0)
    rows = np.rint((inv[1, 1] * axis + inv[1, 2]) * 32.0)
    if max(np.abs(columns).max(), np.abs(rows).max()) >= (32767 - 32) * 32:
        return None
    columns, rows = columns.astype(np.int32), rows.astype(np.int32)
    map1, map2 = buffers.map1, buffers.map2
    map1[:, :, 0] = (columns >> 5)[None, :]
    map1[:, :, 1] = (rows >> 5)[:, None]
    np.bitwise_or(((rows & 31) << 5)[:, None], (columns & 31)[None, :], out=map2, casting="unsafe")
    return map1, map2


def warp_crop(image: np.ndarray, roi: RegionOfInterest, tensor_size: int, border: str = "replicate") -> np.ndarray:
    """Crop ``roi`` out of an RGB uint8 image into an (S, S, 3) uint8 picture, sampled
    bilinearly on the uint8 image as MediaPipe's OpenCV converter does."""
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    map1, map2 = sampling_maps(crop_matrix(roi, tensor_size), tensor_size, reuse=True)
    return cv2.remap(image, map1, map2, cv2.INTER_LINEAR, borderMode=mode, borderValue=0)


def warp_to_tensor(image: np.ndarray, roi: RegionOfInterest, tensor_size: int, border: str = "replicate") -> np.ndarray:
    """The crop as a (3, S, S) float32 tensor in [0, 255]; callers apply their value range
    (the detector [-1, 1], the landmark model [0, 1])."""
    return warp_crop(image, roi, tensor_size, border).transpose(2, 0, 1).astype(np.float32)


def warp_to_image(plane: np.ndarray, roi: RegionOfInterest, width: int, height: int) -> np.ndarray:
    """Map a square (S, S) float plane (a mask) from ROI space back onto the image, zero outside."""
    size = plane.shape[0]
    return cv2.warpAffine(plane, roi.tensor_to_image_matrix(size), (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
