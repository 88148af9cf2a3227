"""What MediaPipe's APIs on posepipe cost over posepipe's own: the same photos and video frames
through ``posepipe.PoseLandmarker`` / ``PoseTracker`` and through ``solutions.pose.Pose`` and
the Tasks ``PoseLandmarker``, in one process.

Pixels are decoded once beforehand, so the figures are the pipeline and the compatibility
layer only. Passes alternate, ``--repeats`` rounds, the order rotating; each time is the
median of its passes, each cost the median over rounds of the pass's time over the first
API's in the same round. It also checks that each API's landmarks equal the pipeline's.

    python bench/compat_cost.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from _interleave import interleave, median_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
VIDEO = SHARED / "data" / "video" / "street_720p_205f.avi"
STEP_MS = 33.333  # MediaPipe's solution clock (33 333 µs a call)


def timestamp_ms(i: int, whole: bool = False) -> float:
    """Frame i's time on that clock; in whole milliseconds, as the Tasks API takes it. Each API
    is compared with the tracker given its own timestamps: the filters adapt to the intervals."""
    return round((i + 1) * STEP_MS) if whole else (i + 1) * STEP_MS


def photos() -> list[np.ndarray]:
    paths = sorted((SHARED / "data" / "images").glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no photos in {SHARED / 'data' / 'images'}")
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]


def frames() -> list[np.ndarray]:
    from posepipe.video.sources import open_source

    with open_source(str(VIDEO)) as source:
        return [frame.image for frame in source]


def pixels_from_normalized(landmarks, width: int, height: int) -> np.ndarray:
    return np.array([(p.x * width, p.y * height) for p in landmarks], dtype=np.float64)


def still_passes(images: list[np.ndarray]) -> tuple[dict, dict]:
    import posepipe as mp
    from posepipe.pipeline import PoseLandmarker

    own = PoseLandmarker(num_poses=1)
    pose = mp.solutions.pose.Pose(static_image_mode=True)
    passes = {"posepipe PoseLandmarker": lambda: [own.detect(im) for im in images],
              "solutions Pose": lambda: [pose.process(im) for im in images]}
    if has_tasks():
        tasks = tasks_landmarker("IMAGE")
        wrapped = [mp.Image(image_format=mp.ImageFormat.SRGB, data=im) for im in images]
        passes["tasks PoseLandmarker"] = lambda: [tasks.detect(im) for im in wrapped]
    return passes, {}


def video_passes(video: list[np.ndarray]) -> tuple[dict, dict]:
    import posepipe as mp
    from posepipe.video.tracking import PoseTracker

    def own(whole: bool = False):
        with PoseTracker(num_poses=1) as tracker:
            return [tracker.process(im, timestamp_ms(i, whole)) for i, im in enumerate(video)]

    def solution():
        with mp.solutions.pose.Pose() as pose:
            return [pose.process(im) for im in video]

    passes, references = {"posepipe PoseTracker": own, "solutions Pose": solution}, {}
    if has_tasks():
        wrapped = [mp.Image(image_format=mp.ImageFormat.SRGB, data=im) for im in video]

        def tasks():
            with tasks_landmarker("VIDEO") as landmarker:
                return [landmarker.detect_for_video(im, timestamp_ms(i, whole=True)) for i, im in enumerate(wrapped)]

        passes["tasks PoseLandmarker"] = tasks
        references["tasks PoseLandmarker"] = own(whole=True)
    return passes, references


def has_tasks() -> bool:
    """Whether this posepipe has the Tasks API (older ones: solutions only)."""
    import importlib.util

    return importlib.util.find_spec("posepipe.tasks") is not None


def tasks_landmarker(mode: str):
    """The Tasks PoseLandmarker on the default models."""
    from posepipe.tasks import BaseOptions
    from posepipe.tasks.python import vision

    options = vision.PoseLandmarkerOptions(base_options=BaseOptions(), running_mode=getattr(vision.RunningMode, mode))
    return vision.PoseLandmarker.create_from_options(options)


def landmarks_of(result, size: tuple[int, int]) -> np.ndarray | None:
    """(33, 2) pixels of the first person, from any of the three APIs' results."""
    width, height = size
    if hasattr(result, "image_size"):  # posepipe's Poses
        return result.landmarks[0][:, :2].astype(np.float64) if len(result) else None
    if hasattr(result, "segmentation_mask"):  # the solution's outputs
        return pixels_from_normalized(result.pose_landmarks.landmark, width, height) if result.pose_landmarks else None
    return pixels_from_normalized(result.pose_landmarks[0], width, height) if result.pose_landmarks else None


def timed(run):
    def one_pass() -> dict:
        t = time.perf_counter()
        out = run()
        return {"seconds": time.perf_counter() - t, "out": out}
    return one_pass


def report(title: str, passes_and_references: tuple[dict, dict], images: list[np.ndarray], repeats: int) -> None:
    """Each API's median time against the first's, and its largest landmark difference from the
    first's output (or from the reference output given for it)."""
    passes, references = passes_and_references
    results = interleave({name: timed(run) for name, run in passes.items()}, repeats)
    base_name = next(iter(passes))
    print(f"\n{title} ({len(images)} frames, median of {repeats} passes)")
    for name in passes:
        reference = references.get(name, results[base_name][0]["out"])
        seconds = median_seconds(results[name])
        worst = 0.0
        for im, a, b in zip(images, reference, results[name][0]["out"]):
            la, lb = landmarks_of(a, im.shape[1::-1]), landmarks_of(b, im.shape[1::-1])
            if (la is None) != (lb is None):
                worst = float("inf")
            elif la is not None:
                worst = max(worst, float(np.abs(la - lb).max()))
        # Each round ran every API once, back to back: the ratio within a round cancels slow spells.
        ratio = statistics.median(r["seconds"] / b["seconds"] for r, b in zip(results[name], results[base_name]))
        print(f"  {name:26s} {seconds * 1000 / len(images):7.2f} ms/frame  {ratio - 1:+6.1%}  "
              f"largest landmark difference from {base_name}: {worst:.2g} px")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from posepipe.models.cpu import describe

    print(describe())
    images, video = photos(), frames()
    report("Photos (static_image_mode=True / IMAGE mode)", still_passes(images), images, args.repeats)
    report("Street video (tracking / VIDEO mode)", video_passes(video), video, args.repeats)


if __name__ == "__main__":
    main()
