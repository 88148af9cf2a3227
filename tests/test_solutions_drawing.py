"""``posepipe.solutions.drawing_utils`` draws what MediaPipe 0.10.21 draws, pixel for pixel.

The pictures in tests/data/drawing were drawn by MediaPipe's own ``draw_landmarks``
(bench/make_drawing_references.py, which records every input in cases.json)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from posepipe.framework.formats import landmark_pb2
from posepipe.solutions import drawing_styles, drawing_utils
from posepipe.solutions.pose import POSE_CONNECTIONS, PoseLandmark
from tests import drawing_cases
from tests.drawing_cases import canvas, draw, to_spec

DATA = Path(__file__).parent / "data" / "drawing"
META = json.loads((DATA / "cases.json").read_text())
CASES = {case["name"]: case for case in META["cases"]}


def landmark_list(points):
    return drawing_cases.landmark_list(points, landmark_pb2)


def test_the_references_are_mediapipes():
    assert META["mediapipe"] == "0.10.21"
    assert len(CASES) >= 10
    # The canvases are reproduced exactly: the reference keeps the pattern wherever nothing was drawn.
    reference = cv2.imread(str(DATA / "landmarks_only.png"))
    untouched = (reference == canvas(320, 240)).all(axis=2)
    assert 0.9 < untouched.mean() < 1.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_draw_landmarks_matches_mediapipe_pixel_for_pixel(name):
    image = draw(CASES[name], drawing_utils, drawing_styles, landmark_pb2, POSE_CONNECTIONS)
    expected = cv2.imread(str(DATA / f"{name}.png"))
    assert expected is not None and expected.shape == image.shape
    differ = (image != expected).any(axis=2)
    assert not differ.any(), f"{int(differ.sum())} pixels differ from MediaPipe's drawing, first at {np.argwhere(differ)[0]}"


def test_default_pose_style_is_mediapipes():
    ours = drawing_styles.get_default_pose_landmarks_style()
    theirs = to_spec(CASES["pose_style"]["landmark_drawing_spec"], drawing_utils)
    assert set(ours) == set(range(33)) and all(isinstance(k, PoseLandmark) for k in ours)
    assert {int(k): v for k, v in ours.items()} == theirs
    assert ours[PoseLandmark.LEFT_WRIST] is ours[PoseLandmark.LEFT_HIP]  # one spec per side, as MediaPipe
    assert ours[PoseLandmark.LEFT_WRIST].color == (0, 138, 255) and ours[PoseLandmark.RIGHT_WRIST].color == (231, 217, 0)


def test_drawing_spec_defaults():
    spec = drawing_utils.DrawingSpec()
    assert (spec.color, spec.thickness, spec.circle_radius) == ((224, 224, 224), 2, 2)
    assert drawing_utils.DrawingSpec(color=(1, 2, 3)) == drawing_utils.DrawingSpec((1, 2, 3), 2, 2)
    assert drawing_utils.RED_COLOR == (0, 0, 255) and drawing_utils.WHITE_COLOR == (224, 224, 224)


def test_same_drawing_through_keywords_and_positions():
    points = landmark_list(CASES["custom_specs"]["landmarks"])
    a, b = canvas(320, 240), canvas(320, 240)
    spec, line = drawing_utils.DrawingSpec((1, 250, 3), 1, 3), drawing_utils.DrawingSpec((9, 9, 200), 2)
    drawing_utils.draw_landmarks(a, points, POSE_CONNECTIONS, spec, line)
    drawing_utils.draw_landmarks(image=b, landmark_list=points, connections=POSE_CONNECTIONS,
                                 connection_drawing_spec=line, landmark_drawing_spec=spec)
    assert (a == b).all() and (a != canvas(320, 240)).any()


def test_nothing_drawn_for_no_landmarks_and_errors_in_mediapipes_words():
    image = canvas(32, 24)
    drawing_utils.draw_landmarks(image, None, POSE_CONNECTIONS)
    assert (image == canvas(32, 24)).all()
    points = landmark_list([{"x": 0.5, "y": 0.5}, {"x": 0.2, "y": 0.2}])
    with pytest.raises(ValueError, match=r"^Input image must contain three channel bgr data\.$"):
        drawing_utils.draw_landmarks(np.zeros((4, 4, 4), np.uint8), points)
    with pytest.raises(ValueError, match=r"^Landmark index is out of range\. Invalid connection from landmark #1 "
                                         r"to landmark #2\.$"):
        drawing_utils.draw_landmarks(image, points, [(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="out of range"):
        drawing_utils.plot_landmarks(points, [(0, 5)])


def test_plot_landmarks_headless():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = landmark_list(CASES["default_specs_hidden_and_out"]["landmarks"])
    shown = sum(1 for p in points.landmark if not (p.HasField("visibility") and p.visibility < 0.5))
    figure = drawing_utils.plot_landmarks(points, POSE_CONNECTIONS)
    try:
        axes = figure.axes[0]
        assert axes.name == "3d"
        assert len(axes.collections) == shown  # one scatter per plotted landmark
        kept = {i for i, p in enumerate(points.landmark) if not (p.HasField("visibility") and p.visibility < 0.5)}
        assert len(axes.lines) == sum(a in kept and b in kept for a, b in POSE_CONNECTIONS)
        # MediaPipe's axes: plot x = -z, y = x, z = -y.
        first = min(kept)
        xs, ys, zs = axes.collections[0]._offsets3d
        p = points.landmark[first]
        assert np.allclose([xs[0], ys[0], zs[0]], [-p.z, p.x, -p.y])
    finally:
        plt.close(figure)
    assert drawing_utils.plot_landmarks(None) is None
