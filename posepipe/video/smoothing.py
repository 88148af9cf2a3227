"""Temporal smoothing: MediaPipe's online filters (``pose_landmark_filtering.pbtxt``) and an
offline zero-lag filter for recorded files.

Online (causal, for live use and MediaPipe parity): a one-euro filter per coordinate whose
speed term is measured in person sizes per second, so the same settings suit near and far
people; a low-pass on visibilities; an uncertainty-weighted blend of segmentation masks.

Offline (files, before computing angles): a Butterworth low-pass run forwards and backwards
(zero phase lag), the standard treatment of marker trajectories in biomechanics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import PosepipeError


class OneEuroFilter:
    """One-euro filter over an array of values sharing one clock, as MediaPipe's ``OneEuroFilter``.

    The cutoff rises with the (low-passed) speed, ``min_cutoff + beta * |speed|``: little
    lag on fast moves, strong smoothing at rest. ``value_scale`` turns speed into the units
    ``beta`` expects (MediaPipe: 1 / person size in pixels).
    """

    def __init__(self, min_cutoff: float, beta: float, derivate_cutoff: float = 1.0, frequency: float = 30.0):
        self.min_cutoff, self.beta, self.derivate_cutoff = min_cutoff, beta, derivate_cutoff
        self.default_frequency = frequency
        self.reset()

    def reset(self) -> None:
        self.frequency = self.default_frequency
        self.last_time: float | None = None
        self.raw: np.ndarray | None = None  # last input
        self.value: np.ndarray | None = None  # last output
        self.speed: np.ndarray | None = None  # last low-passed speed

    def _alpha(self, cutoff):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.frequency)

    def __call__(self, value: np.ndarray, time_s: float, value_scale: float = 1.0) -> np.ndarray:
        value = np.asarray(value, np.float64)
        if self.last_time is not None:
            if time_s <= self.last_time:  # out of order: MediaPipe passes the value through
                return value
            self.frequency = 1.0 / (time_s - self.last_time)
        self.last_time = time_s
        if self.raw is None:
            self.raw, self.value, self.speed = value, value, np.zeros_like(value)
            return value
        speed = (value - self.raw) * value_scale * self.frequency
        a = self._alpha(self.derivate_cutoff)
        self.speed = a * speed + (1 - a) * self.speed
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.speed))
        self.value = a * value + (1 - a) * self.value
        self.raw = value
        return self.value


class LowPassFilter:
    """Exponential moving average, ``alpha`` the weight of the new value (first value passes)."""

    def __init__(self, alpha: float):
        self.alpha, self.value = alpha, None

    def reset(self) -> None:
        self.value = None

    def __call__(self, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, np.float64)
        self.value = value if self.value is None else self.alpha * value + (1 - self.alpha) * self.value
        return self.value


def blend_masks(previous: np.ndarray, current: np.ndarray, ratio: float = 0.7) -> np.ndarray:
    """MediaPipe's segmentation smoothing: keep more of the previous mask where the new one is unsure.

    Uncertainty is a polynomial fit of the squared binary entropy of p, as a function of (p - 0.5)².
    """
    x = (current - 0.5) ** 2
    certainty = x * (5.68842 + x * (-0.748699 + x * (-57.8051 + x * (291.309 + x * -624.717))))
    uncertainty = 1.0 - np.minimum(1.0, certainty)
    return (current + (previous - current) * (uncertainty * ratio)).astype(np.float32)


@dataclass
class SmoothedPose:
    landmarks: np.ndarray  # (33, 3) pixels, z on the x scale
    visibility: np.ndarray  # (33,)
    world_landmarks: np.ndarray  # (33, 3) metres
    auxiliary_landmarks: np.ndarray  # (2, 3) pixels: always smoothed, they steer the next crop
    mask: np.ndarray | None


class PoseSmoother:
    """One person's filters, with the parameters of MediaPipe 0.10.21's pose graph.

    ``enabled=False`` leaves landmarks, world landmarks and visibility as the model gave
    them, but the auxiliary landmarks stay smoothed, as in MediaPipe with
    ``smooth_landmarks=False``: they place the next frame's crop, and a jittering crop makes
    jittering landmarks. ``smooth_masks`` (default: as ``enabled``) blends each mask with the
    previous one, MediaPipe's ``smooth_segmentation``, which is set apart from the landmarks.
    """

    def __init__(self, enabled: bool = True, smooth_masks: bool | None = None):
        self.enabled = enabled
        self.smooth_masks = enabled if smooth_masks is None else smooth_masks
        self.landmarks = OneEuroFilter(min_cutoff=0.05, beta=80.0)
        self.world = OneEuroFilter(min_cutoff=0.1, beta=40.0)
        self.auxiliary = OneEuroFilter(min_cutoff=0.01, beta=10.0)
        self.visibility = LowPassFilter(alpha=0.1)
        self.mask: np.ndarray | None = None

    def reset(self) -> None:
        for f in (self.landmarks, self.world, self.auxiliary, self.visibility):
            f.reset()
        self.mask = None

    def __call__(self, time_s: float, landmarks: np.ndarray, visibility: np.ndarray, world: np.ndarray,
                 auxiliary: np.ndarray, mask: np.ndarray | None = None) -> SmoothedPose:
        # Speeds are measured in person sizes: the side of the square the raw auxiliary
        # landmarks span (centre to body-size point, doubled), as MediaPipe's OBJECT_SCALE_ROI.
        person_size = 2.0 * float(np.hypot(*(auxiliary[1, :2] - auxiliary[0, :2])))
        scale = 1.0 / person_size if person_size > 1e-6 else 0.0
        aux = self.auxiliary(auxiliary, time_s, scale) if scale else auxiliary
        if mask is not None and self.smooth_masks:
            mask = self.mask = mask if self.mask is None else blend_masks(self.mask, mask)
        if not self.enabled:
            return SmoothedPose(landmarks, visibility, world, aux.astype(np.float32), mask)
        visibility = self.visibility(visibility)
        if scale:
            landmarks = self.landmarks(landmarks, time_s, scale)
        world = self.world(world, time_s)
        return SmoothedPose(landmarks.astype(np.float32), visibility.astype(np.float32),
                            world.astype(np.float32), aux.astype(np.float32), mask)


def zero_lag_filter(values: np.ndarray, times_s: np.ndarray, cutoff_hz: float, order: int = 2) -> np.ndarray:
    """Butterworth low-pass run forwards then backwards along axis 0: no phase lag.

    ``values`` (T, ...) sampled at ``times_s``; the rate is the median frame interval. Runs
    too short for the filter's padding are returned unchanged. ``order`` 2 applied twice is
    Winter's fourth-order zero-lag filter; 6 Hz suits walking, 10-15 Hz faster sport.
    """
    try:
        from scipy.signal import butter, filtfilt
    except ImportError:
        raise PosepipeError("the zero-lag filter needs SciPy: pip install 'posepipe[analysis]'") from None
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return values
    rate = 1.0 / float(np.median(np.diff(times_s)))
    if not 0 < cutoff_hz < rate / 2:
        raise PosepipeError(f"the cutoff must be between 0 and half the frame rate ({rate / 2:.3g} Hz)")
    b, a = butter(order, cutoff_hz / (rate / 2))
    padlen = 3 * max(len(a), len(b))
    if len(values) <= padlen:
        return values
    return filtfilt(b, a, values, axis=0, padlen=padlen)
