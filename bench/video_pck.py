"""PCK of video runs against a reference on a range of frames: how closely a model copies
MediaPipe where there are no human labels (a distilled student on frames it never saw).

Each run is a `posepipe video -o` JSON-lines file; the reference is one in the same contract
(``../shared/reference/mediapipe-0.10.21/video_street_raw.jsonl``). The first pose of each
frame is compared; a landmark's error is its distance over the person's size, the longer
side of the reference landmarks' box, as in `posepipe eval`.

    python bench/video_pck.py REFERENCE.jsonl RUN.jsonl [RUN.jsonl ...] --frames 155:204
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posepipe.io import json_lines  # noqa: E402


def first_poses(path: Path) -> dict[int, np.ndarray]:
    """frame → (33, 2) image pixels of the first pose, for frames with one."""
    return {record["frame"]: np.array([[lm["x"], lm["y"]] for lm in record["poses"][0]["landmarks"]])
            for _, record in json_lines(path) if record.get("poses")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--frames", default="0:", help="first:last frame, inclusive (default all)")
    args = parser.parse_args()
    first, _, last = args.frames.partition(":")
    lo, hi = int(first or 0), int(last) if last else 1 << 30
    reference = {f: p for f, p in first_poses(args.reference).items() if lo <= f <= hi}
    print(f"{len(reference)} reference frames in {lo}..{min(hi, max(reference, default=lo))}")
    print("| run | frames | missed | PCK@0.05 | PCK@0.1 | median error |")
    print("|---|---:|---:|---:|---:|---:|")
    for run in args.runs:
        poses = first_poses(run)
        errors = [np.linalg.norm(poses[f] - ref, axis=1) / np.ptp(ref, axis=0).max()
                  for f, ref in reference.items() if f in poses]
        e = np.concatenate(errors) if errors else np.array([np.inf])
        print(f"| {run} | {len(errors)} | {len(reference) - len(errors)} | {np.mean(e < 0.05):.3f} | "
              f"{np.mean(e < 0.1):.3f} | {np.median(e):.4f} |")


if __name__ == "__main__":
    main()
