"""Stage 3, the landmark model: 256×256 crop in [0, 1] → 39 landmarks, world landmarks, mask.

Decoding follows MediaPipe's ``tensors_to_pose_landmarks_and_segmentation.pbtxt`` and
``pose_landmark_by_roi_cpu.pbtxt``: TensorsToLandmarks (39 × 5 values, sigmoid visibility
and presence), RefineLandmarksFromHeatmap (the 9 × 9 window mp.solutions.pose runs, min
confidence 0.5), projection of the crop back to the image, world landmarks turned by the
ROI's rotation, sigmoid mask. Each step is MediaPipe's float32 arithmetic, to the bit
(``tests/test_mediapipe_stages.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .float32 import cosf, sinf
from .float32 import sigmoid as sigmoid_f32
from .roi import RegionOfInterest, warp_crop, warp_to_image
from .models.runtime import Model, Signature

INPUT_SIZE = 256
NUM_MODEL_LANDMARKS = 39  # 33 body landmarks, 2 auxiliary (ROI) points, 4 unused
# MediaPipe 0.10.21's graph file names a 7x7 refinement window, and its PoseLandmarkByRoiCpu
# graph run on its own (as its Tasks API runs it) refines with 7; but mp.solutions.pose, whose
# outputs are the reference here, runs 9x9 (the option's default: its Python wrapper loses
# the graph's options). With 9 posepipe gives mp.solutions.pose's landmarks to the float32
# rounding on its own crops (tests/test_video_parity.py, step by step), with 7 up to 3.7 px apart.
HEATMAP_KERNEL = 9
MIN_CONFIDENCE_TO_REFINE = 0.5


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80, 80)))  # clipped: no float32 overflow warnings


def decode_landmarks(raw: np.ndarray, input_size: int = INPUT_SIZE) -> np.ndarray:
    """(B, 195) raw values → (B, 39, 5): x, y, z normalised by the crop size, visibility, presence."""
    values = raw.reshape(raw.shape[0], NUM_MODEL_LANDMARKS, 5).astype(np.float32).copy()
    values[..., :3] /= np.float32(input_size)  # z is scaled like x
    values[..., 3:] = sigmoid_f32(values[..., 3:])
    return values


def refine_with_heatmap(landmarks: np.ndarray, heatmaps: np.ndarray, kernel: int = HEATMAP_KERNEL,
                        min_confidence: float = MIN_CONFIDENCE_TO_REFINE) -> np.ndarray:
    """Replace each landmark's x, y by the sigmoid-weighted mean of the heatmap window around it.

    ``landmarks`` (B, 39, >=2) normalised, ``heatmaps`` (B, 39, H, W) raw logits. A landmark
    moves only when the window's peak confidence reaches ``min_confidence``; points outside
    the heatmap stay as they are. Windows shrink at the border.

    MediaPipe's RefineLandmarksFromHeatmapCalculator to the bit: float32 sigmoids on glibc's
    ``expf``, and running float32 sums over the window row by row (a cell outside the
    heatmap adds an exact zero), then ``weighted_col / width / sum``.
    """
    out = landmarks.copy()
    b, k, h, w = heatmaps.shape
    half = (kernel - 1) // 2
    f32 = np.float32
    # Truncation toward zero, as the C++ int conversion.
    cols = np.trunc(landmarks[..., 0].astype(f32) * f32(w)).astype(np.int64)
    rows = np.trunc(landmarks[..., 1].astype(f32) * f32(h)).astype(np.int64)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    # All windows at once: (B, 39, kernel, kernel) gathered with clipped indices; cells that
    # fall outside the heatmap get zero weight, which is what a shrunken window means.
    offsets = np.arange(-half, half + 1)
    win_rows = rows[..., None] + offsets  # (B, 39, kernel)
    win_cols = cols[..., None] + offsets
    valid = (((win_rows >= 0) & (win_rows < h))[..., :, None] & ((win_cols >= 0) & (win_cols < w))[..., None, :])
    batch = np.arange(b)[:, None, None, None]
    point = np.arange(k)[None, :, None, None]
    logits = heatmaps[batch, point, np.clip(win_rows, 0, h - 1)[..., :, None], np.clip(win_cols, 0, w - 1)[..., None, :]]
    window = np.where(valid, sigmoid_f32(logits), f32(0)).reshape(b, k, kernel * kernel)
    col_index = np.broadcast_to(win_cols[..., None, :], (b, k, kernel, kernel)).reshape(b, k, kernel * kernel).astype(f32)
    row_index = np.broadcast_to(win_rows[..., :, None], (b, k, kernel, kernel)).reshape(b, k, kernel * kernel).astype(f32)
    total = np.cumsum(window, axis=-1, dtype=f32)[..., -1]  # cumsum: one term at a time, in order
    weighted_col = np.cumsum(col_index * window, axis=-1, dtype=f32)[..., -1]
    weighted_row = np.cumsum(row_index * window, axis=-1, dtype=f32)[..., -1]
    refine = inside & (window.max(axis=-1) >= f32(min_confidence)) & (total > 0)
    safe_total = np.where(total > 0, total, f32(1))
    out[..., 0] = np.where(refine, weighted_col / f32(w) / safe_total, out[..., 0])
    out[..., 1] = np.where(refine, weighted_row / f32(h) / safe_total, out[..., 1])
    return out


def project_to_image(landmarks: np.ndarray, roi: RegionOfInterest, image_size: tuple[int, int] | None = None
                     ) -> np.ndarray:
    """(K, >=3) crop-normalised x, y, z → (K, 3) image pixels, z scaled by the ROI side like x.

    For a crop made as MediaPipe makes it (``roi.rect``), MediaPipe's own steps in float32:
    LandmarkLetterboxRemoval, LandmarkProjection on the NormalizedRect (``cosf``, ``sinf``),
    then × the image size, which is what its next calculators compute from the landmarks.
    """
    if roi.rect is None or image_size is None:
        xy = roi.tensor_to_image(1.0)(landmarks[:, :2])
        return np.concatenate([xy, landmarks[:, 2:3] * roi.size], axis=1).astype(np.float32)
    f32 = np.float32
    x_center, y_center, width, height, rotation, pad_x, pad_y = roi.rect
    one, half = f32(1), f32(0.5)
    x = (landmarks[:, 0].astype(f32) - pad_x) / (one - (pad_x + pad_x))
    y = (landmarks[:, 1].astype(f32) - pad_y) / (one - (pad_y + pad_y))
    z = landmarks[:, 2].astype(f32) / (one - (pad_x + pad_x))
    x, y = x - half, y - half
    c, s = cosf(rotation), sinf(rotation)
    new_x = (c * x - s * y) * width + x_center
    new_y = (s * x + c * y) * height + y_center
    image_w, image_h = f32(image_size[0]), f32(image_size[1])
    return np.stack([new_x * image_w, new_y * image_h, z * width * image_w], axis=1)


def project_world(world: np.ndarray, roi: RegionOfInterest) -> np.ndarray:
    """(K, 3) metres in the crop's frame → the image's frame: turn x, y by the ROI rotation
    (WorldLandmarkProjectionCalculator, in float32 with ``cosf`` and ``sinf``)."""
    c, s = cosf(roi.rotation), sinf(roi.rotation)
    x, y = world[:, 0].astype(np.float32), world[:, 1].astype(np.float32)
    return np.stack([c * x - s * y, s * x + c * y, world[:, 2].astype(np.float32)], axis=1)


MASK_OUTPUT = 2  # index of the segmentation logits among the model's outputs
# What a landmark model must compute, whichever network it is (MediaPipe's, or a trained one):
# landmarks, pose flag, segmentation logits, heatmaps, world landmarks.
SIGNATURE = Signature("landmark model", (3, INPUT_SIZE, INPUT_SIZE),
                      ((NUM_MODEL_LANDMARKS * 5,), (1,), (1, INPUT_SIZE, INPUT_SIZE), (NUM_MODEL_LANDMARKS, 64, 64),
                       (NUM_MODEL_LANDMARKS * 3,)))


def select(outputs: list[np.ndarray | None], rows: list[int]) -> list[np.ndarray | None]:
    """The given batch rows of every output (a dropped output stays None)."""
    return [None if o is None else o[rows] for o in outputs]


@dataclass
class LandmarkOutput:
    """One person's landmark-model result, in image coordinates."""

    landmarks: np.ndarray  # (33, 3) pixels
    visibility: np.ndarray  # (33,)
    presence: np.ndarray  # (33,)
    auxiliary: np.ndarray  # (2, 3) pixels
    world: np.ndarray  # (33, 3) metres
    score: float
    mask: np.ndarray | None  # (H, W) in [0, 1]


class LandmarkModel:
    """BlazePose landmark network on a batch of ROIs of one image."""

    def __init__(self, model: Model):
        self.model = model

    def with_threads(self, threads: int) -> "LandmarkModel":
        """This landmark model opened again on ``threads`` threads (same outputs)."""
        return LandmarkModel(self.model.with_threads(threads))

    def preprocess(self, image: np.ndarray, rois: list[RegionOfInterest]) -> np.ndarray:
        """The crops as an (N, 3, S, S) float batch in [0, 1]. Its memory is laid out as the
        runtime reads its input (LiteRT: channels last, ``channels_last``), so that neither
        this nor the runtime copies it through a transpose (a third of a millisecond a crop)."""
        channels_last = getattr(self.model, "channels_last", False)
        if channels_last:
            batch = np.empty((len(rois), INPUT_SIZE, INPUT_SIZE, 3), np.float32).transpose(0, 3, 1, 2)
        else:
            batch = np.empty((len(rois), 3, INPUT_SIZE, INPUT_SIZE), np.float32)
        for slot, roi in zip(batch, rois):  # one pass per crop: HWC uint8 → float in [0, 1]
            np.multiply(warp_crop(image, roi, INPUT_SIZE).transpose(2, 0, 1), np.float32(1 / 255), out=slot)
        return batch

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Raw outputs: landmarks (B, 195), presence (B, 1), mask logits (B, 1, 256, 256),
        heatmaps (B, 39, 64, 64), world landmarks (B, 117)."""
        return self.model.run(batch)

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Crop-space results of a batch: landmarks (B, 39, 5) normalised by the crop, refined
        on the heatmaps, with visibility and presence; world landmarks (B, 39, 3) in the crop's frame."""
        raw, _, _, heatmaps, world = outputs
        return refine_with_heatmap(decode_landmarks(raw), heatmaps), world.reshape(len(raw), NUM_MODEL_LANDMARKS, 3)

    @staticmethod
    def to_image(decoded: np.ndarray, world: np.ndarray, score: float, mask_logits: np.ndarray | None,
                 roi: RegionOfInterest, image_size: tuple[int, int]) -> LandmarkOutput:
        """One person's crop-space result (from :meth:`decode`) in image coordinates."""
        points = project_to_image(decoded, roi, image_size)
        mask = None
        if mask_logits is not None:
            mask = warp_to_image(sigmoid(mask_logits).astype(np.float32), roi, *image_size)
        return LandmarkOutput(landmarks=points[:33], visibility=decoded[:33, 3], presence=decoded[:33, 4],
                              auxiliary=points[33:35], world=project_world(world[:33], roi), score=float(score),
                              mask=mask)

    def postprocess(self, outputs: list[np.ndarray], rois: list[RegionOfInterest], image_size: tuple[int, int],
                    with_mask: bool) -> list[LandmarkOutput]:
        decoded, world = self.decode(outputs)
        flags, masks = outputs[1], outputs[2]
        return [self.to_image(decoded[i], world[i], flags[i, 0], masks[i, 0] if with_mask else None, roi, image_size)
                for i, roi in enumerate(rois)]
