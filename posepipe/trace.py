"""The pipeline trace: every stage's tensors, value ranges and times, and pictures of what the
model sees (detector input with detections, the crop, the heatmaps, the mask, the overlay)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .drawing import PoseAnnotator
from .io import read_image, write_image
from .landmarks import INPUT_SIZE as LANDMARK_SIZE
from .pipeline import PoseLandmarker
from .roi import roi_from_alignment_points


@dataclass
class StageRow:
    stage: str
    what: str
    shape: tuple
    low: float
    high: float
    ms: float


def _row(stage: str, what: str, array: np.ndarray, seconds: float) -> StageRow:
    array = np.asarray(array)
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    return StageRow(stage, what, tuple(array.shape), low, high, seconds * 1000)


def _heatmap_picture(heatmaps: np.ndarray) -> np.ndarray:
    """(39, 64, 64) logits → a 4×8 grid of the 33 body landmarks' sigmoid maps, 4× enlarged."""
    maps = 1 / (1 + np.exp(-heatmaps[:33].astype(np.float64)))
    tiles = np.zeros((32, 64, 64))
    tiles[:32] = maps[:32]
    grid = tiles.reshape(4, 8, 64, 64).transpose(0, 2, 1, 3).reshape(256, 512)
    coloured = cv2.applyColorMap((grid * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return cv2.resize(cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB), (1024, 512), interpolation=cv2.INTER_NEAREST)


def run_trace(image_path: str | Path, out_dir: str | Path, landmarker: PoseLandmarker) -> list[StageRow]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[StageRow] = []

    t = time.perf_counter()
    image = read_image(image_path)
    rows.append(_row("1 input", "RGB image (decoded)", image, time.perf_counter() - t))
    height, width = image.shape[:2]

    detector = landmarker.detector
    t = time.perf_counter()
    prepared = detector.preprocess(image)
    rows.append(_row("2 preprocessing", "detector input, letterboxed", prepared.tensor[None], time.perf_counter() - t))
    t = time.perf_counter()
    raw_boxes, raw_scores = detector.model.run(prepared.tensor[None])[:2]
    rows.append(_row("3 model", "detector boxes + keypoints", raw_boxes, time.perf_counter() - t))
    rows.append(_row("3 model", "detector score logits", raw_scores, 0.0))
    t = time.perf_counter()
    detections = detector.postprocess(raw_boxes[0], raw_scores[0], prepared)
    rows.append(_row("4 postprocessing", "detections after weighted NMS", detections.scores, time.perf_counter() - t))

    picture = ((prepared.tensor.transpose(1, 2, 0) + 1) * 127.5).clip(0, 255).astype(np.uint8).copy()
    to_tensor = prepared.roi.image_to_tensor(picture.shape[0])
    for box, kps, score in zip(detections.boxes, detections.keypoints, detections.scores):
        (x0, y0), (x1, y1) = [(to_tensor[:, :2] @ p + to_tensor[:, 2]) for p in (box[:2], box[2:])]
        cv2.rectangle(picture, (int(x0), int(y0)), (int(x1), int(y1)), (0, 255, 0), 1)
        for k, p in enumerate(kps):
            q = to_tensor[:, :2] @ p + to_tensor[:, 2]
            cv2.circle(picture, (int(q[0]), int(q[1])), 2, (255, 0, 0) if k < 2 else (255, 255, 0), -1)
        cv2.putText(picture, f"{score:.2f}", (int(x0), max(8, int(y0) - 2)), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 255, 0))
    write_image(out / "1_detector_input.png", picture)

    poses = None
    if len(detections):
        rois = [roi_from_alignment_points(k[0], k[1], image_size=(width, height))
                for k in detections.keypoints[: landmarker.options.num_poses]]
        model = landmarker.landmark_model
        t = time.perf_counter()
        batch = model.preprocess(image, rois)
        rows.append(_row("2 preprocessing", "landmark crop, rotated", batch, time.perf_counter() - t))
        t = time.perf_counter()
        outputs = model.infer(batch)
        seconds = time.perf_counter() - t
        for name, array in zip(("landmarks (39×5)", "pose presence", "segmentation logits", "heatmap logits",
                                "world landmarks (39×3)"), outputs):
            rows.append(_row("3 model", name, array, seconds))
            seconds = 0.0
        t = time.perf_counter()
        poses = landmarker.poses_from_outputs(outputs, rois, (width, height))
        rows.append(_row("4 postprocessing", "landmarks in image pixels", poses.landmarks, time.perf_counter() - t))
        write_image(out / "2_crop.png", (batch[0].transpose(1, 2, 0) * 255).round().astype(np.uint8))
        write_image(out / "3_heatmaps.png", _heatmap_picture(outputs[3][0]))
        if poses.masks is not None and len(poses):
            mask = poses.masks[0]
            write_image(out / "4_mask.png", (np.repeat(mask[:, :, None], 3, axis=2) * 255).astype(np.uint8))

    if landmarker.options.accurate:  # the stages above are MediaPipe's; the overlay shows what accurate mode finds
        t = time.perf_counter()
        poses = landmarker.detect(image)
        rows.append(_row("4 postprocessing", "accurate mode: refined landmarks", poses.landmarks,
                         time.perf_counter() - t))

    t = time.perf_counter()
    overlay = PoseAnnotator().annotate(image, poses) if poses is not None else image
    rows.append(_row("5 visualization", "overlay", overlay, time.perf_counter() - t))
    write_image(out / "5_overlay.png", overlay)
    return rows
