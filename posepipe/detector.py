"""Stage 1, the person detector: letterboxed 224×224 input → SSD decoding → weighted NMS.

Every number here is from MediaPipe's ``pose_detection_cpu.pbtxt`` (SsdAnchorsCalculator,
TensorsToDetectionsCalculator, NonMaxSuppressionCalculator options).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .float32 import sigmoid
from .roi import RegionOfInterest, warp_crop
from .results import Detections
from .models.runtime import Model

INPUT_SIZE = 224
NUM_KEYPOINTS = 4  # 0: mid-hip, 1: full-body size/rotation point, 2: mid-shoulder, 3: upper-body point
NMS_IOU_THRESHOLD = 0.3
SCORE_CLIP = 100.0


@lru_cache(maxsize=None)
def ssd_anchors(input_size: int = INPUT_SIZE, strides: tuple[int, ...] = (8, 16, 32, 32, 32),
                offset: float = 0.5) -> np.ndarray:
    """Anchor centres (N, 2) as (x, y) in [0, 1], in the order the network emits its boxes.

    MediaPipe's SsdAnchorsCalculator with ``fixed_anchor_size``: consecutive layers with the
    same stride share one grid, each contributing two anchors per cell (aspect ratio 1.0
    plus the interpolated scale); all anchors have size 1, so only centres matter.
    """
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer < len(strides) and strides[layer] == stride:
            same += 1
            layer += 1
        cells = -(-input_size // stride)
        ys, xs = np.meshgrid((np.arange(cells) + offset) / cells, (np.arange(cells) + offset) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, 2 * same, axis=0))
    return np.concatenate(centres).astype(np.float32)


_TWO_OVER_255 = np.float64(np.float32(2) / np.float32(255))  # the float scale OpenCV is given


def letterbox_roi(width: int, height: int) -> RegionOfInterest:
    """The whole image, padded to a square around its centre (``keep_aspect_ratio``)."""
    side = max(width, height)
    return RegionOfInterest(width / 2, height / 2, side, 0.0)


def letterbox_padding(width: int, height: int) -> tuple[np.float32, np.float32]:
    """The padding of the letterboxed square on each side, as a share of it (horizontal,
    vertical), in float32 as MediaPipe's PadRoi computes it."""
    f32, one, two = np.float32, np.float32(1), np.float32(2)
    aspect = f32(height) / f32(width)
    if one > aspect:
        return f32(0), (one - aspect / one) / two
    return (one - one / aspect) / two, f32(0)


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, min_score: float,
                      input_size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (N, 4) as x0, y0, x1, y1, keypoints (N, 4, 2) and scores (N,), all in [0, 1] of the
    network input, for the anchors whose score reaches ``min_score``. In float32, step by
    step as MediaPipe's TensorsToDetectionsCalculator (its sigmoid on glibc's ``expf``)."""
    clip = np.float32(SCORE_CLIP)
    scores = sigmoid(np.clip(raw_scores.reshape(-1).astype(np.float32), -clip, clip))
    keep = np.flatnonzero(scores >= np.float32(min_score))
    anchors = ssd_anchors(input_size)[keep]
    raw = raw_boxes.reshape(-1, 4 + 2 * NUM_KEYPOINTS)[keep].astype(np.float32) / np.float32(input_size)
    centre = raw[:, 0:2] + anchors
    half = raw[:, 2:4] / np.float32(2)
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None, :]
    return boxes, keypoints, scores[keep]


def _overlap(best: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """MediaPipe's OverlapSimilarity (intersection over union) of each of ``rects`` with
    ``best``, all as float32 Rectangle_f (x0, y0, x1, y1 with x1 = x0 + width)."""
    zero = np.float32(0)
    lo = np.maximum(rects[:, :2], best[:2])
    hi = np.minimum(rects[:, 2:], best[2:])
    meets = ~((rects[:, 2] < best[0]) | (best[2] < rects[:, 0]) | (rects[:, 3] < best[1]) | (best[3] < rects[:, 1]))
    inside = meets & (lo <= hi).all(axis=1)
    inter = np.where(inside, (hi[:, 0] - lo[:, 0]) * (hi[:, 1] - lo[:, 1]), zero)
    areas = (rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])
    area = (best[2] - best[0]) * (best[3] - best[1])
    union = areas + area - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(meets & (union > zero), inter / union, zero)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box against many (x0, y0, x1, y1)."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = NMS_IOU_THRESHOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-max suppression: each cluster (IoU above the threshold with
    its best box) becomes the score-weighted mean of its boxes and keypoints, keeping the
    best score. Output sorted by score, best first.

    In float32, summed in MediaPipe's order (best first, one box after another), so that
    the keypoints that place the crop are MediaPipe's to the bit."""
    f32 = np.float32
    if len(scores) == 0:
        return np.zeros((0, 4), f32), np.zeros((0, NUM_KEYPOINTS, 2), f32), np.zeros(0, f32)
    scores = scores.astype(f32)
    x0, y0 = boxes[:, 0].astype(f32), boxes[:, 1].astype(f32)
    # Rectangle_f(xmin, ymin, width, height): its far corner is xmin + width, in float32.
    rects = np.stack([x0, y0, x0 + (boxes[:, 2].astype(f32) - x0), y0 + (boxes[:, 3].astype(f32) - y0)], axis=1)
    points = keypoints.astype(f32).reshape(len(scores), -1)
    remaining = np.argsort(-scores, kind="stable")
    out_boxes, out_kps, out_scores = [], [], []
    while remaining.size:
        best = remaining[0]
        similar = _overlap(rects[best], rects[remaining]) > f32(iou_threshold)
        members = remaining[similar]
        if members.size:
            weights = scores[members]
            # Running float32 sums in the cluster's order (cumsum adds one term at a time).
            total = np.cumsum(weights, dtype=f32)[-1]
            corners = np.cumsum(rects[members] * weights[:, None], axis=0, dtype=f32)[-1] / total
            xmin, ymin = corners[0], corners[1]
            out_boxes.append((xmin, ymin, xmin + (corners[2] - xmin), ymin + (corners[3] - ymin)))
            out_kps.append(np.cumsum(points[members] * weights[:, None], axis=0, dtype=f32)[-1] / total)
        else:  # a degenerate (zero-area) box overlaps nothing, not even itself
            out_boxes.append(tuple(rects[best]))
            out_kps.append(points[best])
        out_scores.append(scores[best])
        if not members.size:
            break  # MediaPipe stops where a pass removes nothing
        remaining = remaining[~similar]
    return (np.array(out_boxes, f32), np.array(out_kps, f32).reshape(-1, NUM_KEYPOINTS, 2),
            np.array(out_scores, f32))


@dataclass
class DetectorInput:
    tensor: np.ndarray  # (3, 224, 224) float32 in [-1, 1]
    roi: RegionOfInterest  # the letterboxed square, in image pixels
    image_size: tuple[int, int]  # width, height


class PoseDetector:
    """BlazePose detector: ``detect(image)`` → :class:`Detections` in image pixels."""

    def __init__(self, model: Model, min_score: float = 0.5):
        self.model = model
        self.min_score = min_score

    def preprocess(self, image: np.ndarray) -> DetectorInput:
        height, width = image.shape[:2]
        roi = letterbox_roi(width, height)
        crop = warp_crop(image, roi, INPUT_SIZE, border="zero")
        # [0, 255] -> [-1, 1] as OpenCV's convertTo does it for MediaPipe: one fused
        # multiply-add in float32, v * (2/255) - 1 rounded once. (The product of a byte and a
        # float is exact in float64, and so is the difference, so float64 then one rounding is
        # the FMA.) Channels stay last in memory, as the runtime reads them.
        signed = (crop * _TWO_OVER_255 - 1.0).astype(np.float32)
        return DetectorInput(signed.transpose(2, 0, 1), roi, (width, height))

    def postprocess(self, raw_boxes: np.ndarray, raw_scores: np.ndarray, prepared: DetectorInput) -> Detections:
        boxes, keypoints, scores = decode_detections(raw_boxes, raw_scores, self.min_score)
        boxes, keypoints, scores = weighted_nms(boxes, keypoints, scores)
        # Letterbox removal (DetectionLetterboxRemovalCalculator), then image pixels as
        # MediaPipe's next calculators compute them: normalised value × image size, in
        # float32. The keypoints are then exactly the points its crop is built from.
        f32, one = np.float32, np.float32(1)
        width, height = prepared.image_size
        size = np.array([width, height], f32)
        pad = np.array(letterbox_padding(width, height), f32)
        unpadded = one - (pad + pad)  # the share of the square the image fills, per axis
        keypoints = (keypoints - pad) / unpadded * size
        corner = (boxes[:, :2] - pad) / unpadded
        sides = (boxes[:, 2:] - boxes[:, :2]) / unpadded
        boxes = np.concatenate([corner * size, (corner + sides) * size], axis=1)
        return Detections(boxes=boxes.astype(f32), keypoints=keypoints.astype(f32), scores=scores.astype(f32))

    def with_threads(self, threads: int) -> "PoseDetector":
        """This detector on a model opened again on ``threads`` threads (same outputs)."""
        return PoseDetector(self.model.with_threads(threads), self.min_score)

    def detect(self, image: np.ndarray) -> Detections:
        prepared = self.preprocess(image)
        raw_boxes, raw_scores = self.model.run(prepared.tensor[None])[:2]
        return self.postprocess(raw_boxes[0], raw_scores[0], prepared)
