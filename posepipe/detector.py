"""Stage 1, the person detector: letterboxed 224×224 input → SSD decoding → weighted NMS.

Every number here is from MediaPipe's ``pose_detection_cpu.pbtxt`` (SsdAnchorsCalculator,
TensorsToDetectionsCalculator, NonMaxSuppressionCalculator options).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .roi import RegionOfInterest, warp_to_tensor
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


def letterbox_roi(width: int, height: int) -> RegionOfInterest:
    """The whole image, padded to a square around its centre (``keep_aspect_ratio``)."""
    side = max(width, height)
    return RegionOfInterest(width / 2, height / 2, side, 0.0)


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, min_score: float,
                      input_size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (N, 4) as x0, y0, x1, y1, keypoints (N, 4, 2) and scores (N,), all in [0, 1] of the
    network input, for the anchors whose score reaches ``min_score``."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    keep = np.flatnonzero(scores >= min_score)
    anchors = ssd_anchors(input_size)[keep]
    raw = raw_boxes.reshape(-1, 4 + 2 * NUM_KEYPOINTS)[keep] / input_size
    centre = raw[:, 0:2] + anchors
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None, :]
    return boxes, keypoints, scores[keep]


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
    best score. Output sorted by score, best first."""
    order = np.argsort(-scores, kind="stable")
    out_boxes, out_kps, out_scores = [], [], []
    while order.size:
        best = order[0]
        iou = box_iou(boxes[best], boxes[order])
        members = order[iou > iou_threshold]
        if members.size == 0:  # a degenerate (zero-area) box overlaps nothing, not even itself
            members = order[:1]
        w = scores[members][:, None]
        out_boxes.append((boxes[members] * w).sum(0) / w.sum())
        out_kps.append((keypoints[members] * w[:, :, None]).sum(0) / w.sum())
        out_scores.append(scores[best])
        order = order[~np.isin(order, members)]
    if not out_scores:
        return np.zeros((0, 4), np.float32), np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros(0, np.float32)
    return np.array(out_boxes, np.float32), np.array(out_kps, np.float32), np.array(out_scores, np.float32)


@dataclass
class DetectorInput:
    tensor: np.ndarray  # (3, 224, 224) float32 in [-1, 1]
    roi: RegionOfInterest  # the letterboxed square, in image pixels


class PoseDetector:
    """BlazePose detector: ``detect(image)`` → :class:`Detections` in image pixels."""

    def __init__(self, model: Model, min_score: float = 0.5):
        self.model = model
        self.min_score = min_score

    def preprocess(self, image: np.ndarray) -> DetectorInput:
        height, width = image.shape[:2]
        roi = letterbox_roi(width, height)
        tensor = warp_to_tensor(image, roi, INPUT_SIZE, border="zero")
        # [0, 255] -> [-1, 1]
        return DetectorInput(tensor * np.float32(2 / 255) - np.float32(1), roi)

    def postprocess(self, raw_boxes: np.ndarray, raw_scores: np.ndarray, prepared: DetectorInput) -> Detections:
        boxes, keypoints, scores = decode_detections(raw_boxes, raw_scores, self.min_score)
        boxes, keypoints, scores = weighted_nms(boxes, keypoints, scores)
        # Letterbox removal: network-input [0, 1] -> image pixels.
        to_image = prepared.roi.tensor_to_image(1.0)
        boxes = np.concatenate([to_image(boxes[:, :2]), to_image(boxes[:, 2:])], axis=1)
        keypoints = to_image(keypoints.reshape(-1, 2)).reshape(-1, NUM_KEYPOINTS, 2)
        return Detections(boxes=boxes.astype(np.float32), keypoints=keypoints.astype(np.float32),
                          scores=scores.astype(np.float32))

    def with_threads(self, threads: int) -> "PoseDetector":
        """This detector on a model opened again on ``threads`` threads (same outputs)."""
        return PoseDetector(self.model.with_threads(threads), self.min_score)

    def detect(self, image: np.ndarray) -> Detections:
        prepared = self.preprocess(image)
        raw_boxes, raw_scores = self.model.run(prepared.tensor[None])[:2]
        return self.postprocess(raw_boxes[0], raw_scores[0], prepared)
