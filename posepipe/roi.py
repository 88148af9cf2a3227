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
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import cv2
import numpy as np

from .float32 import atan2f

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
    # MediaPipe's NormalizedRect behind this square, where it was computed as MediaPipe
    # computes it (:func:`roi_from_alignment_points` given the image size): x_center,
    # y_center, width, height, rotation in float32, then the crop's letterbox padding,
    # horizontal and vertical. The landmarks are projected back through it as MediaPipe does.
    rect: tuple | None = field(default=None, compare=False, repr=False)

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


def roi_from_alignment_points(centre: np.ndarray, scale_point: np.ndarray, scale: float = ROI_SCALE,
                              image_size: tuple[int, int] | None = None) -> RegionOfInterest:
    """MediaPipe's AlignmentPointsRectsCalculator + RectTransformationCalculator(square_long).

    The square is centred on ``centre`` with side ``2 * |scale_point - centre| * scale``,
    rotated so that the centre → scale_point vector points up (target angle 90°).
    Detector keypoints 0 and 1 (mid-hip, body-size point) and the landmark model's
    auxiliary landmarks 33 and 34 both use this rule.

    Given ``image_size``, the points are MediaPipe's float32 pixels (its normalised values
    times the image size, in float32) and the square is computed in MediaPipe's own float32
    steps, bit for bit (:func:`_mediapipe_rect`), so that the next crop is MediaPipe's.
    """
    if image_size is not None and scale == ROI_SCALE:
        return _mediapipe_rect(centre, scale_point, *image_size)
    x0, y0 = float(centre[0]), float(centre[1])
    x1, y1 = float(scale_point[0]), float(scale_point[1])
    side = 2 * math.hypot(x1 - x0, y1 - y0) * scale
    rotation = normalize_radians(TARGET_ANGLE - math.atan2(-(y1 - y0), x1 - x0))
    return RegionOfInterest(x0, y0, side, rotation)


_TARGET_ANGLE_F32 = np.float32(math.pi * 90 / 180.0)  # DetectionsToRectsCalculator's target_angle_


def _mediapipe_rect(centre: np.ndarray, scale_point: np.ndarray, width: int, height: int) -> RegionOfInterest:
    """The crop MediaPipe cuts around two float32 pixel points, in its own arithmetic:
    AlignmentPointsRects (the float distance, doubled in double; the rotation from
    ``atan2f``, wrapped in double), RectTransformation (square_long, scale 1.25), then the
    ImageToTensorCalculator's GetRoi and PadRoi for a square tensor."""
    f32 = np.float32
    w, h = f32(width), f32(height)
    xc, yc = f32(centre[0]), f32(centre[1])
    dx, dy = f32(scale_point[0]) - xc, f32(scale_point[1]) - yc
    angle = _TARGET_ANGLE_F32 - atan2f(-dy, dx)
    rotation = f32(float(angle) - 2 * math.pi * math.floor((float(angle) + math.pi) / (2 * math.pi)))
    nx, ny = xc / w, yc / h
    long_side = max(alignment_square_sides(centre, scale_point, width, height))
    nw, nh = long_side / w * f32(ROI_SCALE), long_side / h * f32(ROI_SCALE)
    return roi_from_normalized_rect((nx, ny, nw, nh, rotation), width, height)


def alignment_square_sides(centre: np.ndarray, scale_point: np.ndarray, width: int, height: int
                           ) -> tuple[np.float32, np.float32]:
    """The square AlignmentPointsRectsCalculator puts around two float32 pixel points (side:
    the float distance, doubled in double), as its NormalizedRect's width and height come
    back to pixels in the next calculator (side / W * W, side / H * H, in float32)."""
    f32 = np.float32
    dx, dy = f32(scale_point[0]) - f32(centre[0]), f32(scale_point[1]) - f32(centre[1])
    side = f32(float(np.sqrt(dx * dx + dy * dy)) * 2.0)
    w, h = f32(width), f32(height)
    return side / w * w, side / h * h


def roi_from_normalized_rect(rect: tuple, width: int, height: int) -> RegionOfInterest:
    """The square crop MediaPipe's ImageToTensorCalculator cuts for a NormalizedRect
    (x_center, y_center, width, height, rotation, float32): GetRoi, then PadRoi towards the
    square tensor. The side is the width in pixels unless the height is longer; the other
    axis is padded (by float rounding, a hair at most), and the padding is kept with the
    rect for the way back (LandmarkLetterboxRemoval)."""
    f32 = np.float32
    nx, ny, nw, nh, rotation = (f32(v) for v in rect)
    w, h = f32(width), f32(height)
    cx, cy, roi_w, roi_h = nx * w, ny * h, nw * w, nh * h
    aspect = roi_h / roi_w
    one, two = f32(1.0), f32(2.0)
    if one > aspect:
        side, padding = roi_w, (f32(0.0), (one - aspect / one) / two)
    else:
        side, padding = roi_h / one, ((one - one / aspect) / two, f32(0.0))
    return RegionOfInterest(float(cx), float(cy), float(side), float(rotation),
                            rect=(nx, ny, nw, nh, rotation) + padding)


def box_corners(roi: RegionOfInterest) -> np.ndarray:
    """(4, 2) float32 corners of the crop as MediaPipe's OpenCV converter gets them:
    ``cv::RotatedRect(centre, size, rotation * 180.f / M_PI)`` then ``boxPoints``.

    Written out rather than called, because OpenCV 5's ``boxPoints`` (posepipe's cv2 may be
    5.x) computes the last two corners otherwise, a float ulp away from OpenCV 4's (MediaPipe
    0.10.21's), and an ulp here moves some pixels of the crop by one grey level. The angle is
    MediaPipe's mixed precision: a float product divided by the double ``M_PI``, kept as a
    float. With this, the crop equals MediaPipe's pixel for pixel (``tests/test_mediapipe_stages.py``).
    """
    f32 = np.float32
    cx, cy, side = f32(roi.x), f32(roi.y), f32(roi.size)
    angle = f32(float(f32(roi.rotation) * f32(180.0)) / math.pi)
    radians = float(angle) * math.pi / 180.0  # RotatedRect::points: in double, then a float
    b = f32(math.cos(radians)) * f32(0.5)
    a = f32(math.sin(radians)) * f32(0.5)
    x0, y0 = cx - a * side - b * side, cy + b * side - a * side
    x1, y1 = cx + a * side - b * side, cy - b * side - a * side
    two = f32(2.0)
    return np.array([[x0, y0], [x1, y1], [two * cx - x0, two * cy - y0], [two * cx - x1, two * cy - y1]], np.float32)


def crop_matrix(roi: RegionOfInterest, tensor_size: int) -> np.ndarray:
    """3×3 image → tensor matrix built the way MediaPipe's OpenCV converter builds it.

    The float32 corners (:func:`box_corners`) mapped onto the tensor corners by
    ``cv2.getPerspectiveTransform`` (LU, OpenCV 4's default). Mathematically this is
    :meth:`RegionOfInterest.image_to_tensor`; the float32 rounding of the corners is kept on
    purpose, because the landmark network is sensitive to sub-pixel shifts of its input and
    parity with MediaPipe is the goal.
    """
    s = float(tensor_size)
    targets = np.array([[0, s], [0, 0], [s, 0], [s, s]], np.float32)
    return cv2.getPerspectiveTransform(box_corners(roi), targets, solveMethod=cv2.DECOMP_LU)


@lru_cache(maxsize=4)
def _tensor_axis(tensor_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tensor's columns (and rows) 0..S-1, and each column split as OpenCV's
    warpPerspective splits it: the start of its block of columns, and its place in the block.
    OpenCV computes ``(m0 * start + m1 * y + m2) + m0 * place``, and the rounding of that
    order is what MediaPipe's crops carry."""
    axis = np.arange(tensor_size, dtype=np.float64)
    rows_per_block = min(16, tensor_size)  # BLOCK_SZ / 2
    columns_per_block = min(32 * 32 // rows_per_block, tensor_size)
    starts = axis // columns_per_block * columns_per_block
    return axis, starts, axis - starts


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
    inv = cv2.invert(matrix, flags=cv2.DECOMP_LU)[1]  # OpenCV's closed form for 3×3, its rounding
    axis, starts, places = _tensor_axis(tensor_size)
    if inv[0, 1] == 0 and inv[1, 0] == 0 and inv[2, 0] == 0 and inv[2, 1] == 0 and inv[2, 2] == 1:
        maps = _axis_aligned_maps(inv, axis, starts, places, buffers)  # the detector's letterbox, mostly
        if maps is not None:
            return maps if reuse else (maps[0].copy(), maps[1].copy())
    # OpenCV's order of operations, ((m0 * start + m1 * y) + m2) + m0 * place, so that the
    # rounding is the same; the outer sum of the y column and the start row adds the same two
    # products (a + b == b + a).
    w = np.add.outer(inv[2, 1] * axis, inv[2, 0] * starts, out=buffers.w)
    w += inv[2, 2]
    w += inv[2, 0] * places
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
        c = np.add.outer(inv[row, 1] * axis, inv[row, 0] * starts, out=fixed[row])
        c += inv[row, 2]
        c += inv[row, 0] * places
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


def _axis_aligned_maps(inv: np.ndarray, axis: np.ndarray, starts: np.ndarray, places: np.ndarray,
                       buffers: _MapBuffers) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`sampling_maps` where the matrix only scales and shifts each axis (its other
    entries exactly 0, W exactly 1): a source column depends on the tensor column alone, a
    source row on the tensor row, so each is computed once and spread. The same operations
    as the general rule, less terms that are exactly zero, hence the same numbers. None where
    anything would need clipping (the general rule clips)."""
    columns = np.rint(((inv[0, 0] * starts + inv[0, 2]) + inv[0, 0] * places) * 32.0)
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


def warp_to_image(plane: np.ndarray, roi: RegionOfInterest, width: int, height: int) -> np.ndarray:
    """Map a square (S, S) float plane (a mask) from ROI space back onto the image, zero outside."""
    size = plane.shape[0]
    return cv2.warpAffine(plane, roi.tensor_to_image_matrix(size), (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
