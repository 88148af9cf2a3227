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
from ..roi import alignment_square_sides


class OneEuroFilter:
    """MediaPipe's ``OneEuroFilter`` over an array of values sharing one clock, operation for
    operation.

    The cutoff rises with the (low-passed) speed, ``min_cutoff + beta * |speed|``: little lag
    on fast moves, strong smoothing at rest. ``value_scale`` turns speed into the units
    ``beta`` expects (MediaPipe: 1 / person size in pixels). MediaPipe's arithmetic is kept to
    the bit: timestamps in whole nanoseconds, the speed in double, and both low-passes in
    float (:class:`LowPassFilter`). The auxiliary landmarks' output places the next crop, so
    any other rounding would move the crop by a float ulp, and its pixels with it.
    """

    def __init__(self, min_cutoff: float, beta: float, derivate_cutoff: float = 1.0, frequency: float = 30.0):
        # The options are floats in MediaPipe's proto, widened to double.
        self.min_cutoff, self.beta, self.derivate_cutoff = (float(np.float32(v)) for v in (min_cutoff, beta, derivate_cutoff))
        self.default_frequency = float(np.float32(frequency))
        self.reset()

    def reset(self) -> None:
        self.frequency = self.default_frequency
        self.last_ns = -1  # kUninitializedTimestamp
        self.value = LowPassFilter()
        self.speed = LowPassFilter()

    def _alpha(self, cutoff):
        te = 1.0 / self.frequency
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def __call__(self, value: np.ndarray, time_ns: int, value_scale: np.float32 = np.float32(1)) -> np.ndarray:
        value = np.asarray(value, np.float32)
        if self.last_ns >= time_ns:  # out of order: MediaPipe passes the value through
            return value
        if self.last_ns != 0 and time_ns != 0:
            self.frequency = 1.0 / ((time_ns - self.last_ns) * 1e-9)
        self.last_ns = time_ns
        if self.value.raw is None:
            speed = np.zeros(value.shape, np.float64)
        else:
            speed = (value.astype(np.float64) - self.value.raw) * float(value_scale) * self.frequency
        smoothed_speed = self.speed(speed.astype(np.float32), self._alpha(self.derivate_cutoff))
        cutoff = self.min_cutoff + self.beta * np.abs(smoothed_speed.astype(np.float64))
        return self.value(value, self._alpha(cutoff))


class LowPassFilter:
    """MediaPipe's ``LowPassFilter``: float state, ``alpha * value`` in float plus
    ``(1.0 - alpha) * stored`` in double, rounded to float; the first value passes."""

    def __init__(self, alpha: float | None = None):
        self.alpha = alpha
        self.reset()

    def reset(self) -> None:
        self.raw: np.ndarray | None = None  # last input
        self.stored: np.ndarray | None = None  # last output

    def __call__(self, value: np.ndarray, alpha=None) -> np.ndarray:
        value = np.asarray(value, np.float32)
        if self.stored is None:
            result = value
        else:
            a = np.asarray(self.alpha if alpha is None else alpha, np.float32)
            result = ((a * value).astype(np.float64) + (1.0 - a.astype(np.float64)) * self.stored).astype(np.float32)
        self.raw, self.stored = value, result
        return result


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
    """One person's filters, with the parameters of MediaPipe 0.10.21's pose graph
    (``pose_landmark_filtering.pbtxt``) and its arithmetic: the same video gives
    MediaPipe's smoothed landmarks, and its next crops, to the bit.

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
        self.world = OneEuroFilter(min_cutoff=0.1, beta=40.0)  # disable_value_scaling
        self.auxiliary = OneEuroFilter(min_cutoff=0.01, beta=10.0)
        self.visibility = LowPassFilter(alpha=0.1)
        self.mask: np.ndarray | None = None

    def reset(self) -> None:
        for f in (self.landmarks, self.world, self.auxiliary, self.visibility):
            f.reset()
        self.mask = None

    def __call__(self, time_s: float, landmarks: np.ndarray, visibility: np.ndarray, world: np.ndarray,
                 auxiliary: np.ndarray, mask: np.ndarray | None = None,
                 image_size: tuple[int, int] = (1, 1)) -> SmoothedPose:
        """Landmarks in MediaPipe's float32 pixels (its normalised values × ``image_size``),
        at ``time_s`` (MediaPipe's clock counts whole microseconds)."""
        f32 = np.float32
        time_ns = round(time_s * 1e6) * 1000
        width, height = f32(image_size[0]), f32(image_size[1])
        aux = np.asarray(auxiliary, f32)
        # Speeds are measured in person sizes: OBJECT_SCALE_ROI, the square the raw auxiliary
        # landmarks span (AlignmentPointsRects), as (width + height) / 2 in pixels.
        side_w, side_h = alignment_square_sides(aux[0], aux[1], *image_size)
        object_scale = (side_w + side_h) / f32(2)
        scaled = bool(object_scale >= f32(1e-6))  # min_allowed_object_scale; below it, values pass
        value_scale = f32(1) / object_scale if scaled else None
        if scaled:
            # The way back through normalised values, which the next calculator multiplies out again.
            size = np.array([width, height, width], f32)
            aux = self.auxiliary(aux, time_ns, value_scale) / size * size
        if mask is not None and self.smooth_masks:
            mask = self.mask = mask if self.mask is None else blend_masks(self.mask, mask)
        if not self.enabled:
            return SmoothedPose(landmarks, visibility, world, aux, mask)
        visibility = self.visibility(visibility)
        if scaled:
            landmarks = self.landmarks(landmarks, time_ns, value_scale)
        world = self.world(world, time_ns)
        return SmoothedPose(np.asarray(landmarks, f32), visibility, world, aux, mask)

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
