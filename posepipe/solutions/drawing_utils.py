"""``mediapipe.solutions.drawing_utils`` for landmarks: :class:`DrawingSpec`,
:func:`draw_landmarks` and :func:`plot_landmarks`, drawing exactly what MediaPipe draws.

The rules, as MediaPipe 0.10.21 applies them: a landmark is left out when its visibility or
presence is *set* and below 0.5, or when it lies outside the image (normalised x or y outside
[0, 1]); a normalised point maps to pixel ``(min(floor(x·W), W-1), min(floor(y·H), H-1))``;
connections are drawn first (both ends kept), then each landmark as a white ring of radius
``max(r + 1, int(1.2·r))`` under a circle of radius ``r`` in its colour, with OpenCV's
default 8-connected lines. Colours go to OpenCV as given (MediaPipe's constants are BGR).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Iterator, Mapping, Optional, Tuple, Union

import cv2
import numpy as np

__all__ = ["DrawingSpec", "draw_landmarks", "plot_landmarks", "WHITE_COLOR", "BLACK_COLOR", "RED_COLOR",
           "GREEN_COLOR", "BLUE_COLOR"]

_VISIBILITY_THRESHOLD = 0.5
_PRESENCE_THRESHOLD = 0.5

# BGR, as MediaPipe defines them.
WHITE_COLOR = (224, 224, 224)
BLACK_COLOR = (0, 0, 0)
RED_COLOR = (0, 0, 255)
GREEN_COLOR = (0, 128, 0)
BLUE_COLOR = (255, 0, 0)


@dataclasses.dataclass
class DrawingSpec:
    color: Tuple[int, int, int] = WHITE_COLOR
    thickness: int = 2  # negative: filled circles
    circle_radius: int = 2


def _inside(value: float) -> bool:
    """In [0, 1], where the ends count within math.isclose's default tolerance."""
    return (value > 0 or math.isclose(0, value)) and (value < 1 or math.isclose(1, value))


def _to_pixel(x: float, y: float, width: int, height: int) -> Optional[Tuple[int, int]]:
    if not (_inside(x) and _inside(y)):
        return None
    return min(math.floor(x * width), width - 1), min(math.floor(y * height), height - 1)


def _hidden(landmark) -> bool:
    """Visibility or presence set and below threshold (an unset field never hides a landmark)."""
    return ((landmark.HasField("visibility") and landmark.visibility < _VISIBILITY_THRESHOLD)
            or (landmark.HasField("presence") and landmark.presence < _PRESENCE_THRESHOLD))


def _shown(landmark_list) -> Iterator[Tuple[int, object]]:
    """(index, landmark) for each landmark the visibility and presence rule keeps, in order."""
    for index, landmark in enumerate(landmark_list.landmark):
        if not _hidden(landmark):
            yield index, landmark


def _kept_connections(connections, kept: Mapping[int, tuple], count: int) -> Iterator[tuple]:
    """(connection, start point, end point) for each connection whose two ends are in ``kept``,
    in order; each connection is checked against the ``count`` landmarks as it comes, so that
    what came before an out-of-range one is already drawn when the ValueError is raised, as in
    MediaPipe."""
    if not connections:
        return
    for connection in connections:
        start, end = connection[0], connection[1]
        if not (0 <= start < count and 0 <= end < count):
            raise ValueError(f"Landmark index is out of range. Invalid connection from landmark #{start} "
                             f"to landmark #{end}.")
        if start in kept and end in kept:
            yield connection, kept[start], kept[end]


def draw_landmarks(image: np.ndarray, landmark_list,
                   connections: Optional[Iterable[Tuple[int, int]]] = None,
                   landmark_drawing_spec: Optional[Union[DrawingSpec, Mapping[int, DrawingSpec]]]
                   = DrawingSpec(color=RED_COLOR),
                   connection_drawing_spec: Optional[Union[DrawingSpec, Mapping[Tuple[int, int], DrawingSpec]]]
                   = DrawingSpec(),
                   is_drawing_landmarks: bool = True) -> None:
    """Draw ``landmark_list`` (a ``NormalizedLandmarkList``) and its ``connections`` on ``image``, in place.

    Either spec may be one :class:`DrawingSpec` or a mapping from landmark index (or
    connection pair) to one, such as ``drawing_styles.get_default_pose_landmarks_style()``;
    None (or ``is_drawing_landmarks=False``) leaves that part out. Nothing is drawn when
    ``landmark_list`` is None. Raises ValueError for an image without three channels and for
    a connection naming a landmark the list does not have.
    """
    if not landmark_list:
        return
    if image.shape[2] != 3:
        raise ValueError("Input image must contain three channel bgr data.")
    height, width = image.shape[:2]
    points: dict[int, Tuple[int, int]] = {}  # index → pixel, in landmark order
    for index, landmark in _shown(landmark_list):
        pixel = _to_pixel(landmark.x, landmark.y, width, height)
        if pixel:
            points[index] = pixel
    for connection, start, end in _kept_connections(connections, points, len(landmark_list.landmark)):
        spec = (connection_drawing_spec[connection] if isinstance(connection_drawing_spec, Mapping)
                else connection_drawing_spec)
        cv2.line(image, start, end, spec.color, spec.thickness)
    if is_drawing_landmarks and landmark_drawing_spec:
        for index, pixel in points.items():
            spec = (landmark_drawing_spec[index] if isinstance(landmark_drawing_spec, Mapping)
                    else landmark_drawing_spec)
            ring = max(spec.circle_radius + 1, int(spec.circle_radius * 1.2))
            cv2.circle(image, pixel, ring, WHITE_COLOR, spec.thickness)
            cv2.circle(image, pixel, spec.circle_radius, spec.color, spec.thickness)


def _rgb_unit(bgr: Tuple[int, int, int]) -> Tuple[float, ...]:
    return tuple(c / 255.0 for c in bgr[::-1])


def plot_landmarks(landmark_list, connections: Optional[Iterable[Tuple[int, int]]] = None,
                   landmark_drawing_spec: DrawingSpec = DrawingSpec(color=RED_COLOR, thickness=5),
                   connection_drawing_spec: DrawingSpec = DrawingSpec(color=BLACK_COLOR, thickness=5),
                   elevation: int = 10, azimuth: int = 10):
    """Plot landmarks (world or normalised) in a matplotlib 3-D figure, as MediaPipe does.

    Axes are MediaPipe's: plot x = -z, plot y = x, plot z = -y, so the person stands upright.
    The same visibility and presence rules as :func:`draw_landmarks` apply. The figure is
    shown where matplotlib has an interactive backend; without a display (Agg) nothing is
    shown and no warning is raised. Returns the figure (MediaPipe returns None).
    """
    if not landmark_list:
        return None
    import warnings

    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(10, 10))
    axes = figure.add_subplot(projection="3d")
    axes.view_init(elev=elevation, azim=azimuth)
    plotted: dict[int, Tuple[float, float, float]] = {}
    for index, landmark in _shown(landmark_list):
        point = (-landmark.z, landmark.x, -landmark.y)
        axes.scatter3D(xs=[point[0]], ys=[point[1]], zs=[point[2]],
                       color=_rgb_unit(landmark_drawing_spec.color), linewidth=landmark_drawing_spec.thickness)
        plotted[index] = point
    for _, a, b in _kept_connections(connections, plotted, len(landmark_list.landmark)):
        axes.plot3D(xs=[a[0], b[0]], ys=[a[1], b[1]], zs=[a[2], b[2]],
                    color=_rgb_unit(connection_drawing_spec.color), linewidth=connection_drawing_spec.thickness)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")  # Agg: nothing to show
        plt.show()
    return figure
