"""The pose landmarker: detector → regions of interest → landmark model, as MediaPipe's
``pose_landmark_cpu.pbtxt`` wires them for still images."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .accurate import RECIPE, Person, accurate_people, people_in_boxes
from .models.assets import cache_dir, resolve_models
from .detector import PoseDetector
from .errors import ImageError, PosepipeError
from .landmarks import MASK_OUTPUT, SIGNATURE, LandmarkModel, LandmarkOutput, select
from .results import Poses
from .roi import RegionOfInterest, roi_from_alignment_points
from .models.runtime import BACKENDS, check_cuda_provider, check_device, load_model


@dataclass
class PoseLandmarkerOptions:
    """Options, named as in MediaPipe's ``PoseLandmarkerOptions`` where they exist there."""

    num_poses: int = 1
    min_pose_detection_confidence: float = 0.5
    min_pose_presence_confidence: float = 0.5
    output_segmentation_masks: bool = False
    backend: str = "auto"  # per model, the runtime measured faster on this machine (cached); or name one
    device: str = "cpu"  # cuda: both models on ONNX Runtime's CUDA provider (onnxruntime-gpu)
    threads: int = 0  # 0: the runtime's default (all cores)
    detector_model: str | Path | None = None  # a BlazePose detector .tflite
    landmark_model: str | Path | None = None  # a BlazePose landmark .tflite (lite, full, heavy) or trained .onnx
    accurate: bool = False  # posepipe's accurate mode (posepipe.accurate): more model runs, fewer misses

    def validate(self) -> None:
        if self.num_poses < 1:
            raise PosepipeError("num_poses must be at least 1")
        for name in ("min_pose_detection_confidence", "min_pose_presence_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise PosepipeError(f"{name} must be between 0 and 1")
        if self.backend not in BACKENDS:
            raise PosepipeError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        check_device(self.device, self.backend)
        if self.device == "cuda":
            check_cuda_provider()


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Accept an RGB uint8 (H, W, 3) array; convert gray, RGBA and 16-bit; refuse the rest clearly."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array image, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"the image is empty (shape {image.shape})")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"expected uint8 or uint16 pixels, got {image.dtype}; scale float images to 0-255 uint8")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


@dataclass
class StageTimes:
    """Seconds spent per stage on the last call (for traces and benchmarks)."""

    detector: float = 0.0
    landmark_preprocess: float = 0.0
    landmark_model: float = 0.0
    postprocess: float = 0.0


class PoseLandmarker:
    """Find up to ``num_poses`` people and their 33 landmarks in RGB images.

    >>> with PoseLandmarker(num_poses=2) as landmarker:   # doctest: +SKIP
    ...     poses = landmarker.detect(rgb_image)
    """

    def __init__(self, options: PoseLandmarkerOptions | None = None, **overrides):
        options = options or PoseLandmarkerOptions()
        for key, value in overrides.items():
            if not hasattr(options, key):
                raise PosepipeError(f"unknown option {key!r}")
            setattr(options, key, value)
        options.validate()
        self.options = options
        detector_path, landmark_path = resolve_models(options.detector_model, options.landmark_model)
        cache = cache_dir()
        self.detector = PoseDetector(load_model(detector_path, options.backend, cache, options.threads,
                                                device=options.device), options.min_pose_detection_confidence)
        drop = () if options.output_segmentation_masks else (MASK_OUTPUT,)
        # auto: each model on the runtime measured faster for it on this machine; without masks
        # either runtime runs the landmark model minus its mask decoder (runtime.load_model).
        self.landmark_model = LandmarkModel(load_model(landmark_path, options.backend, cache, options.threads,
                                                       drop_outputs=drop, signature=SIGNATURE, device=options.device))
        self.times = StageTimes()
        self.recipe = RECIPE  # what accurate=True does (posepipe.accurate.AccurateRecipe)

    def __enter__(self) -> "PoseLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.detector = self.landmark_model = None  # sessions free their memory with their last reference

    def detect(self, image: np.ndarray, boxes: np.ndarray | None = None) -> Poses:
        """Poses in one RGB image (uint8; gray, RGBA and 16-bit are converted).

        ``boxes``: people's boxes, (N, 4) [x, y, w, h] in pixels, from your own detector or
        labels, instead of BlazePose's detector. Each box gives at most one pose (``num_poses``
        does not apply); a box with no pose present gives none, so the result may be shorter
        than ``boxes``: ``poses.box_index[i]`` is the box person ``i`` was found in, and the
        people come in box order.
        """
        if self.detector is None:
            raise PosepipeError("this PoseLandmarker is closed")
        image = as_rgb_uint8(image)
        height, width = image.shape[:2]
        if boxes is not None:
            return self._detect_in_boxes(image, as_boxes(boxes))
        if self.options.accurate:
            return self._detect_accurately(image)
        t0 = time.perf_counter()
        detections = self.detector.detect(image)
        t1 = time.perf_counter()
        self.times = StageTimes(detector=t1 - t0)
        if len(detections) == 0:
            return Poses.empty(width, height)
        poses = self.landmarks_in_rois(image, self.rois_of(detections, (width, height)))
        poses.detections = detections
        return poses

    def rois_of(self, detections, image_size: tuple[int, int]) -> list[RegionOfInterest]:
        """The crops of the first ``num_poses`` detected people, as MediaPipe aligns them
        (in its float32 steps: the crops are MediaPipe's to the pixel)."""
        return [roi_from_alignment_points(kp[0], kp[1], image_size=image_size)
                for kp in detections.keypoints[: self.options.num_poses]]

    def detect_many(self, images: Iterable[np.ndarray]) -> list[Poses]:
        """Poses in each of several RGB images, as :meth:`detect` finds them one at a time, but
        with the landmark model run once on all the images' crops: one batch, which a GPU needs
        to be kept busy. Each image is let go once cropped (an iterator of images is read as it
        goes). Accurate mode runs image by image."""
        if self.detector is None:
            raise PosepipeError("this PoseLandmarker is closed")
        if self.options.accurate:
            return [self.detect(image) for image in images]
        times = StageTimes()
        found = []  # per image: (width, height), detections, rois
        crops = []
        for image in images:
            image = as_rgb_uint8(image)
            t0 = time.perf_counter()
            detections = self.detector.detect(image)
            t1 = time.perf_counter()
            rois = self.rois_of(detections, (image.shape[1], image.shape[0]))
            if rois:
                crops.append(self.landmark_model.preprocess(image, rois))
            found.append(((image.shape[1], image.shape[0]), detections, rois))
            times.detector += t1 - t0
            times.landmark_preprocess += time.perf_counter() - t1
        t0 = time.perf_counter()
        outputs = self.landmark_model.infer(np.concatenate(crops)) if crops else []
        t1 = time.perf_counter()
        results, start = [], 0
        for size, detections, rois in found:
            if not rois:
                results.append(Poses.empty(*size))
                continue
            poses = self.poses_from_outputs(select(outputs, list(range(start, start + len(rois)))), rois, size)
            poses.detections = detections
            results.append(poses)
            start += len(rois)
        times.landmark_model, times.postprocess = t1 - t0, time.perf_counter() - t1
        self.times = times
        return results

    def _detect_accurately(self, image: np.ndarray) -> Poses:
        t0 = time.perf_counter()
        people = accurate_people(self.detector, self.landmark_model, image, self.options.num_poses,
                                 self.options.min_pose_presence_confidence, self.options.output_segmentation_masks,
                                 self.recipe)
        self.times = StageTimes(landmark_model=time.perf_counter() - t0)  # the stages interleave: all counted as one
        return self._poses_of(people, image)

    def _detect_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> Poses:
        t0 = time.perf_counter()
        people = people_in_boxes(self.detector, self.landmark_model, image, boxes, self.options.min_pose_presence_confidence,
                                 self.options.output_segmentation_masks, self.options.accurate, self.recipe)
        self.times = StageTimes(landmark_model=time.perf_counter() - t0)
        poses = self._poses_of(people, image)
        poses.box_index = np.array([p.source for p in people], np.int64)
        return poses

    def _poses_of(self, people: list[Person], image: np.ndarray) -> Poses:
        height, width = image.shape[:2]
        if not people:
            return Poses.empty(width, height)
        return poses_from_results([p.output for p in people], [p.roi for p in people], (width, height),
                                  self.options.output_segmentation_masks)

    def landmarks_in_rois(self, image: np.ndarray, rois: list[RegionOfInterest]) -> Poses:
        """Run the landmark model on given regions (one batch), keep the poses that are present."""
        height, width = image.shape[:2]
        t0 = time.perf_counter()
        batch = self.landmark_model.preprocess(image, rois)
        t1 = time.perf_counter()
        outputs = self.landmark_model.infer(batch)
        t2 = time.perf_counter()
        poses = self.poses_from_outputs(outputs, rois, (width, height))
        t3 = time.perf_counter()
        self.times.landmark_preprocess, self.times.landmark_model, self.times.postprocess = t1 - t0, t2 - t1, t3 - t2
        return poses

    def poses_from_outputs(self, outputs: list[np.ndarray], rois: list[RegionOfInterest],
                           image_size: tuple[int, int]) -> Poses:
        """Decode raw landmark-model outputs, keeping the poses whose presence passes the threshold."""
        present = [i for i in range(len(rois)) if outputs[1][i, 0] > self.options.min_pose_presence_confidence]
        results = self.landmark_model.postprocess(select(outputs, present), [rois[i] for i in present],
                                                  image_size, self.options.output_segmentation_masks)
        return poses_from_results(results, [rois[i] for i in present], image_size,
                                  self.options.output_segmentation_masks)


def poses_from_results(results: list[LandmarkOutput], rois: list[RegionOfInterest], image_size: tuple[int, int],
                       with_masks: bool) -> Poses:
    """Stack decoded people (each from the crop ``rois[i]``) into :class:`Poses`."""
    if not results:
        return Poses.empty(*image_size)
    stack = lambda name: np.stack([getattr(r, name) for r in results]).astype(np.float32)  # noqa: E731
    return Poses(
        landmarks=stack("landmarks"), visibility=stack("visibility"), presence=stack("presence"),
        world_landmarks=stack("world"), scores=np.array([r.score for r in results], np.float32),
        rois=np.stack([roi.as_array() for roi in rois]), auxiliary_landmarks=stack("auxiliary"),
        image_size=image_size, masks=stack("mask") if with_masks else None)


def as_boxes(boxes) -> np.ndarray:
    """People's boxes as an (N, 4) float array of [x, y, w, h] pixels; refuses anything else in a sentence."""
    try:
        array = np.asarray(boxes, np.float64)
    except (TypeError, ValueError):
        raise PosepipeError("boxes must be numbers: an (N, 4) array of [x, y, w, h] pixels") from None
    if array.size == 0:
        return np.zeros((0, 4))
    if array.ndim == 1 and array.shape[0] == 4:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4:
        raise PosepipeError(f"boxes must be an (N, 4) array of [x, y, w, h] pixels, not shape {array.shape}")
    if not np.isfinite(array).all():
        raise PosepipeError("a box has a value that is not a finite number")
    if (array[:, 2:] <= 0).any():
        raise PosepipeError("a box must have a positive width and height")
    return array
