"""Typed results: numpy arrays with a leading person axis, like supervision's ``KeyPoints``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .topology import LANDMARK_NAMES


@dataclass
class Detections:
    """Detector output in image pixels, best first."""

    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1 (the face box BlazePose's detector predicts)
    keypoints: np.ndarray  # (N, 4, 2): mid-hip, body size point, mid-shoulder, upper-body point
    scores: np.ndarray  # (N,)

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class Poses:
    """Up to ``num_poses`` people found in one image.

    ``landmarks`` x, y are image pixels; z is on the scale of x (MediaPipe's normalised z
    times the image width), smaller is nearer the camera, origin near the hips' depth.
    ``world_landmarks`` are metres, origin between the hips.
    """

    landmarks: np.ndarray  # (N, 33, 3)
    visibility: np.ndarray  # (N, 33) in [0, 1]
    presence: np.ndarray  # (N, 33) in [0, 1]
    world_landmarks: np.ndarray  # (N, 33, 3)
    scores: np.ndarray  # (N,) pose presence score of the landmark model
    rois: np.ndarray  # (N, 4) x, y, size, rotation of each person's crop
    auxiliary_landmarks: np.ndarray  # (N, 2, 3): the points the next frame's ROI comes from
    image_size: tuple[int, int]  # (width, height)
    masks: np.ndarray | None = None  # (N, H, W) float32 in [0, 1], when segmentation is on
    detections: Detections | None = field(default=None, repr=False)
    track_ids: np.ndarray | None = None  # (N,) int, set by the video tracker: stable per person across frames
    box_index: np.ndarray | None = None  # (N,) int, with given boxes: the box each person was found in

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def bboxes(self) -> np.ndarray:
        """(N, 4) x0, y0, x1, y1: the box around each person's 33 landmarks."""
        if len(self) == 0:
            return np.zeros((0, 4), np.float32)
        xy = self.landmarks[:, :, :2]
        return np.concatenate([xy.min(1), xy.max(1)], axis=1)

    @classmethod
    def empty(cls, width: int, height: int) -> "Poses":
        z = np.zeros
        return cls(z((0, 33, 3), np.float32), z((0, 33), np.float32), z((0, 33), np.float32),
                   z((0, 33, 3), np.float32), z(0, np.float32), z((0, 4), np.float32),
                   z((0, 2, 3), np.float32), (width, height))

    def to_records(self, digits: int = 3) -> list[dict]:
        """The JSON contract's ``poses`` list."""
        out = []
        # tolist() turns each array into Python floats at once (the values float() gives one numpy
        # scalar at a time, several times slower); round() on them is the same correctly rounded one.
        landmarks, world_landmarks = self.landmarks.tolist(), self.world_landmarks.tolist()
        visibility, presence = self.visibility.tolist(), self.presence.tolist()
        for i in range(len(self)):
            lms = [{"name": n, "x": round(x, digits), "y": round(y, digits), "z": round(z, digits),
                    "visibility": round(v, 5), "presence": round(p, 5)}
                   for n, (x, y, z), v, p in zip(LANDMARK_NAMES, landmarks[i], visibility[i], presence[i])]
            world = [{"name": n, "x": round(x, 5), "y": round(y, 5), "z": round(z, 5)}
                     for n, (x, y, z) in zip(LANDMARK_NAMES, world_landmarks[i])]
            record = {"track_id": int(self.track_ids[i])} if self.track_ids is not None else {}
            if self.box_index is not None:
                record["box_index"] = int(self.box_index[i])
            out.append(record | {"score": round(float(self.scores[i]), 5),
                                 "bbox": [round(float(v), 2) for v in self.bboxes[i]],
                                 "landmarks": lms, "world_landmarks": world})
        return out
