"""Landmark model speed: the full model against a distilled student, in the same run.

Both are ONNX files run by ONNX Runtime on this machine's CPU, batch of one 256×256 crop,
as the pipeline runs them: with all outputs (masks on) and without the segmentation
decoder (the default for video). Median of ``--repeats`` blocks of 50 runs each, the two
models interleaved block by block so that a busy machine slows both alike.

    python bench/student_speed.py --student runs/student/model.onnx
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def block_ms(model, batch: np.ndarray, runs: int = 50) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        model.run(batch)
    return (time.perf_counter() - start) / runs * 1000


def main() -> None:
    from posepipe.models.assets import cache_dir, resolve_models
    from posepipe.landmarks import MASK_OUTPUT
    from posepipe.models.runtime import load_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--student", type=Path, required=True, help="the student's model.onnx")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    from posepipe.models.cpu import describe

    print(describe())
    tflite = resolve_models()[1]
    batch = np.random.default_rng(0).uniform(0, 1, (1, 3, 256, 256)).astype(np.float32)
    print(f"landmark model, ONNX Runtime CPU, batch 1, median of {args.repeats} blocks of 50 runs")
    print("| outputs | full model ms | student ms | speed-up |")
    print("|---|---:|---:|---:|")
    for label, drop in (("all (masks on)", ()), ("no mask decoder (video default)", (MASK_OUTPUT,))):
        full = load_model(tflite, "onnxruntime", cache_dir(), args.threads, drop_outputs=drop)
        student = load_model(tflite, "onnxruntime", cache_dir(), args.threads, onnx_path=args.student,
                             drop_outputs=drop)
        for model in (full, student):
            block_ms(model, batch, 10)  # warm up
        times = {"full": [], "student": []}
        for _ in range(args.repeats):
            times["full"].append(block_ms(full, batch))
            times["student"].append(block_ms(student, batch))
        f, s = statistics.median(times["full"]), statistics.median(times["student"])
        print(f"| {label} | {f:.2f} | {s:.2f} | {f / s:.2f}x |")


if __name__ == "__main__":
    main()
