"""MediaPipe Tasks' ``PoseLandmarker`` on posepipe's pipeline.

IMAGE mode runs posepipe's still pipeline (:class:`posepipe.PoseLandmarker`) on each image;
VIDEO and LIVE_STREAM modes follow people with :class:`posepipe.PoseTracker` at the caller's
timestamps. As in MediaPipe's task graph, landmarks are smoothed over time for one pose
(``num_poses=1``) and not for several, and segmentation masks are never blended over frames.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
import os
import zipfile
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from posepipe.errors import ModelError, PosepipeError
from posepipe.image import Image, ImageFormat
from posepipe.models.bundles import unpack_task_bundle
from posepipe.pipeline import PoseLandmarker as StillLandmarker
from posepipe.pipeline import PoseLandmarkerOptions as StillOptions
from posepipe.results import Poses
from posepipe.topology import POSE_CONNECTIONS
from posepipe.video.tracking import PoseTracker

from ..components.containers.landmark import Landmark, NormalizedLandmark
from ..core.base_options import BaseOptions
from .core.vision_task_running_mode import VisionTaskRunningMode as RunningMode

__all__ = ["PoseLandmarker", "PoseLandmarkerOptions", "PoseLandmarkerResult", "PoseLandmarksConnections"]

# The formats the landmarker reads (uint16 ones are brought to 8 bits); float images are not pictures.
_PICTURE_FORMATS = (ImageFormat.SRGB, ImageFormat.SRGBA, ImageFormat.GRAY8,
                    ImageFormat.SRGB48, ImageFormat.SRGBA64, ImageFormat.GRAY16)


@dataclasses.dataclass
class PoseLandmarkerResult:
    """One entry per pose found: 33 landmarks each, and a mask each when masks were asked for.

    ``pose_landmarks``: x / width, y / height, z on x's scale (smaller is nearer), with
    visibility and presence. ``pose_world_landmarks``: metres, origin between the hips, the
    same visibility and presence. ``segmentation_masks``: VEC32F1 images of the input's size,
    values in [0, 1]; None when masks are off or nobody was found.
    """

    pose_landmarks: List[List[NormalizedLandmark]]
    pose_world_landmarks: List[List[Landmark]]
    segmentation_masks: Optional[List[Image]] = None


class PoseLandmarksConnections:
    """The 35 landmark pairs a pose skeleton is drawn with, as MediaPipe lists them."""

    @dataclasses.dataclass
    class Connection:
        start: int
        end: int

    POSE_LANDMARKS: List[Connection] = list(itertools.starmap(Connection, POSE_CONNECTIONS))


@dataclasses.dataclass
class PoseLandmarkerOptions:
    """MediaPipe's options, in its order and with its defaults.

    ``min_pose_presence_confidence``: below it a pose is not reported and, in VIDEO and
    LIVE_STREAM modes, counts as lost (the detector looks again on the next frame).
    ``min_tracking_confidence`` is checked to lie in [0, 1] and otherwise unused: MediaPipe
    uses it to tell a new detection from a tracked person by box overlap, which posepipe's
    tracker does at a fixed 0.5, MediaPipe's default. ``result_callback`` is required in
    LIVE_STREAM mode and refused in the others.

    ``accurate`` is posepipe's, not MediaPipe's: its accurate mode (:mod:`posepipe.accurate`),
    more landmark passes per person for fewer misses, at about 2-3x the time.
    """

    base_options: BaseOptions
    running_mode: RunningMode = RunningMode.IMAGE
    num_poses: int = 1
    min_pose_detection_confidence: float = 0.5
    min_pose_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    output_segmentation_masks: bool = False
    result_callback: Optional[Callable[[PoseLandmarkerResult, Image, int], None]] = None
    accurate: bool = False


class PoseLandmarker:
    """MediaPipe Tasks' pose landmarker: up to ``num_poses`` people in :class:`~posepipe.Image` inputs.

    >>> import posepipe as mp                                                  # doctest: +SKIP
    >>> options = mp.tasks.vision.PoseLandmarkerOptions(
    ...     base_options=mp.tasks.BaseOptions(model_asset_path="pose_landmarker_full.task"),
    ...     running_mode=mp.tasks.vision.RunningMode.VIDEO)
    >>> with mp.tasks.vision.PoseLandmarker.create_from_options(options) as landmarker:
    ...     result = landmarker.detect_for_video(mp.Image.create_from_file("frame.jpg"), 0)

    Differences from MediaPipe: ``detect_async`` runs the frame and calls ``result_callback``
    before it returns, on the caller's thread, once for every frame (MediaPipe may skip frames
    to keep up); there is no ``image_processing_options`` (no rotation); closing twice is
    harmless. Errors are MediaPipe's: ValueError for a call that does not suit the running
    mode, a timestamp that does not increase or a closed landmarker; RuntimeError for a model
    that cannot be opened.
    """

    def __init__(self, options: PoseLandmarkerOptions):
        mode = options.running_mode
        if not isinstance(mode, RunningMode):
            raise ValueError(f"running_mode must be a RunningMode, not {mode!r}")
        if mode == RunningMode.LIVE_STREAM and options.result_callback is None:
            raise ValueError("The vision task is in live stream mode, a user-defined result callback must be provided.")
        if mode != RunningMode.LIVE_STREAM and options.result_callback is not None:
            raise ValueError("The vision task is in image or video mode, a user-defined result callback "
                             "should not be provided.")
        if not 0.0 <= options.min_tracking_confidence <= 1.0:
            raise ValueError("min_tracking_confidence must be between 0 and 1")
        self._options = options
        self._running_mode = mode
        try:
            detector_model, landmark_model = _model_files(options.base_options)
            self._landmarker: StillLandmarker | None = StillLandmarker(StillOptions(
                num_poses=options.num_poses, min_pose_detection_confidence=options.min_pose_detection_confidence,
                min_pose_presence_confidence=options.min_pose_presence_confidence,
                output_segmentation_masks=bool(options.output_segmentation_masks),
                detector_model=detector_model, landmark_model=landmark_model, accurate=bool(options.accurate)))
        except ModelError as exc:
            raise RuntimeError(str(exc)) from None
        except PosepipeError as exc:  # an option out of range
            raise ValueError(str(exc)) from None
        # MediaPipe's task graph smooths a single pose only, and never blends masks over frames.
        self._tracker = None if mode == RunningMode.IMAGE else PoseTracker(
            smooth=options.num_poses == 1, smooth_masks=False, landmarker=self._landmarker, plan_cores=True)
        self._last_timestamp_ms: int | None = None

    @classmethod
    def create_from_model_path(cls, model_path: str) -> "PoseLandmarker":
        """A landmarker in IMAGE mode with default options, on the model at ``model_path``."""
        return cls.create_from_options(PoseLandmarkerOptions(base_options=BaseOptions(model_asset_path=model_path)))

    @classmethod
    def create_from_options(cls, options: PoseLandmarkerOptions) -> "PoseLandmarker":
        return cls(options)

    def __enter__(self) -> "PoseLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Free the models."""
        if self._landmarker is not None:
            self._landmarker.close()
        self._landmarker = self._tracker = None

    def detect(self, image: Image) -> PoseLandmarkerResult:
        """Poses in one image (IMAGE mode)."""
        self._check_mode(RunningMode.IMAGE)
        return self._result(self._landmarker.detect(_pixels(image)))

    def detect_for_video(self, image: Image, timestamp_ms: int) -> PoseLandmarkerResult:
        """Poses in the next frame of a video (VIDEO mode); timestamps in ms must increase."""
        self._check_mode(RunningMode.VIDEO)
        pixels = _pixels(image)
        self._advance_clock(timestamp_ms)
        return self._result(self._tracker.process(pixels, timestamp_ms))

    def detect_async(self, image: Image, timestamp_ms: int) -> None:
        """Poses in the next live frame (LIVE_STREAM mode), handed to ``result_callback`` as
        ``(result, image, timestamp_ms)`` before this returns, also when nobody is found."""
        self._check_mode(RunningMode.LIVE_STREAM)
        pixels = _pixels(image)
        self._advance_clock(timestamp_ms)
        result = self._result(self._tracker.process(pixels, timestamp_ms))
        self._options.result_callback(result, image, int(timestamp_ms))

    def _check_mode(self, mode: RunningMode) -> None:
        if self._running_mode != mode:
            words = mode.name.lower().replace("_", " ")
            raise ValueError(f"Task is not initialized with the {words} mode. Current running mode:"
                             + self._running_mode.name)  # MediaPipe's message, without a space
        if self._landmarker is None:
            raise ValueError("Task runner is currently not running.")

    def _advance_clock(self, timestamp_ms: int) -> None:
        if not isinstance(timestamp_ms, numbers.Integral):
            raise TypeError(f"timestamp_ms must be a whole number of milliseconds, not {type(timestamp_ms).__name__}")
        if self._last_timestamp_ms is not None and timestamp_ms <= self._last_timestamp_ms:
            raise ValueError("Input timestamp must be monotonically increasing.")
        self._last_timestamp_ms = int(timestamp_ms)

    def _result(self, poses: Poses) -> PoseLandmarkerResult:
        if len(poses) == 0:
            return PoseLandmarkerResult([], [])
        width, height = poses.image_size
        normalized = (poses.landmarks / np.array([width, height, width], np.float64)).astype(np.float32)
        pose_landmarks, world_landmarks = [], []
        for i in range(len(poses)):
            scores = list(zip(poses.visibility[i].tolist(), poses.presence[i].tolist()))
            pose_landmarks.append([NormalizedLandmark(x, y, z, v, p)
                                   for (x, y, z), (v, p) in zip(normalized[i].tolist(), scores)])
            world_landmarks.append([Landmark(x, y, z, v, p)
                                    for (x, y, z), (v, p) in zip(poses.world_landmarks[i].tolist(), scores)])
        masks = None
        if self._options.output_segmentation_masks and poses.masks is not None:
            masks = [Image(ImageFormat.VEC32F1, mask) for mask in poses.masks]
        return PoseLandmarkerResult(pose_landmarks, world_landmarks, masks)


def _pixels(image: Image) -> np.ndarray:
    """The pixels of an :class:`Image` the pipeline reads (it converts gray, RGBA and 16 bits)."""
    if not isinstance(image, Image):
        raise TypeError(f"expected an mp.Image, got {type(image).__name__}; wrap an RGB array as "
                        "mp.Image(image_format=mp.ImageFormat.SRGB, data=array)")
    if image.image_format not in _PICTURE_FORMATS:
        raise ValueError(f"the pose landmarker reads SRGB, SRGBA and GRAY8 images, not {image.image_format.name}")
    return image.numpy_view()


def _model_files(base_options: BaseOptions) -> tuple[Path | None, Path | None]:
    """(detector, landmark model) for posepipe's options; None means posepipe's default."""
    if base_options.model_asset_path is not None:
        path = Path(os.path.abspath(base_options.model_asset_path))
        if not path.is_file():
            raise ModelError(f"Unable to open file at {path}")  # MediaPipe's words
        if zipfile.is_zipfile(path):
            return unpack_task_bundle(path)
        with open(path, "rb") as head:
            is_tflite = head.read(8)[4:8] == b"TFL3"  # the FlatBuffer file identifier of TFLite models
        if not (is_tflite or path.suffix.lower() == ".onnx"):
            raise ModelError(f"{path} is neither a .task bundle nor a .tflite model")
        return None, path  # a landmark model alone, after the default detector
    if base_options.model_asset_buffer is not None:
        return unpack_task_bundle(base_options.model_asset_buffer)
    return None, None
