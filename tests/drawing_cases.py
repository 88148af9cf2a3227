"""What a drawing case in tests/data/drawing/cases.json means, in one place for both sides:
bench/make_drawing_references.py draws each case with MediaPipe's own modules (in MediaPipe's
environment, where posepipe is not installed), tests/test_solutions_drawing.py with
posepipe's. Neither package is imported here: the drawing modules are passed in."""

from __future__ import annotations

import json
from types import ModuleType

import numpy as np


def canvas(width: int, height: int) -> np.ndarray:
    """The background every case is drawn on: 16-pixel checks in two BGR shades."""
    y, x = np.mgrid[0:height, 0:width]
    check = (x // 16 + y // 16) % 2
    return np.stack([90 + 40 * check, 100 + 30 * check, 110 + 20 * (1 - check)], axis=2).astype(np.uint8)


def to_spec(value, drawing_utils: ModuleType):
    """A case's spec as ``drawing_utils.DrawingSpec`` objects: None, one spec, or a mapping
    from landmark index (or connection pair, written ``"[a, b]"``) to one."""
    if value is None:
        return None
    if "map" in value or "specs" in value:
        specs = value.get("map") or value["specs"]
        return {tuple(json.loads(k)) if k.startswith("[") else int(k):
                drawing_utils.DrawingSpec(color=tuple(v["color"]), thickness=v["thickness"],
                                          circle_radius=v["circle_radius"]) for k, v in specs.items()}
    return drawing_utils.DrawingSpec(color=tuple(value["color"]), thickness=value["thickness"],
                                     circle_radius=value["circle_radius"])


def landmark_list(points: list[dict], landmark_pb2: ModuleType):
    """A ``NormalizedLandmarkList`` holding ``points`` (dicts of the fields that are set)."""
    message = landmark_pb2.NormalizedLandmarkList()
    for p in points:
        message.landmark.add(**p)
    return message


def draw(case: dict, drawing_utils: ModuleType, drawing_styles: ModuleType, landmark_pb2: ModuleType,
         pose_connections) -> np.ndarray:
    """The case drawn by ``drawing_utils.draw_landmarks`` on its canvas, with the keyword
    arguments the case names (and only those: the rest keep draw_landmarks' defaults)."""
    kwargs = {}
    if case["connections"] == "pose":
        kwargs["connections"] = pose_connections
    elif case["connections"] is not None:
        kwargs["connections"] = [tuple(c) for c in case["connections"]]
    for key in ("landmark_drawing_spec", "connection_drawing_spec"):
        if key in case:
            kwargs[key] = to_spec(case[key], drawing_utils)
    if (case.get("landmark_drawing_spec") or {}).get("style") == "pose":
        kwargs["landmark_drawing_spec"] = drawing_styles.get_default_pose_landmarks_style()  # the real one
    if "is_drawing_landmarks" in case:
        kwargs["is_drawing_landmarks"] = case["is_drawing_landmarks"]
    image = canvas(*case["size"])
    drawing_utils.draw_landmarks(image, landmark_list(case["landmarks"], landmark_pb2), **kwargs)
    return image
