"""The accurate mode's techniques, alone and together: accuracy on the shared labels and time per photo.

Accuracy follows ``posepipe eval``'s protocol (``posepipe.analysis.evaluation``): PCK@0.1 and
people missed on ``limb_joints.json``, OKS AP on the COCO labels, PCK@0.1 on PoseTrack and
MPII; ``--from-boxes`` rows give the labelled box instead of the detector. Time: each
configuration makes one pass over the still-image set (``../shared/data/images``, decode
excluded), ``--repeats`` rounds in rotating order; the figure is the median pass.

    python bench/accurate.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from posepipe import PoseLandmarker  # noqa: E402
from posepipe.accurate import RECIPE  # noqa: E402
from posepipe.analysis.evaluation import evaluate  # noqa: E402
from posepipe.analysis.labels import load_labels  # noqa: E402
from posepipe.io import read_image  # noqa: E402

NOTHING = replace(RECIPE, refine_passes=0, candidates=1, duplicate_iou=1.0, fallback_scales=(), fallback_turns=(0,),
                  whole_always=False, box_scales=(1.0,), box_detector=False, flip=False, detector_turns=(),
                  detector_mirror=False, agree_within=0.0)
FALLBACK = {"fallback_scales": RECIPE.fallback_scales, "fallback_turns": RECIPE.fallback_turns}
# Each technique alone (on top of nothing), the recipe less one of its techniques, the recipe
# plus one it leaves out; None is the default pipeline.
CONFIGURATIONS = {
    "default (MediaPipe's pipeline)": None,
    "refinement alone (≤2 passes)": replace(NOTHING, refine_passes=RECIPE.refine_passes),
    "fallback alone (whole image, 2 scales × 3 turns)": replace(NOTHING, **FALLBACK),
    "3 candidates by prominence alone": replace(NOTHING, candidates=3, duplicate_iou=RECIPE.duplicate_iou),
    "flip averaging alone": replace(NOTHING, flip=True),
    "detector turns 90/270/180 alone": replace(NOTHING, detector_turns=(1, 3, 2)),
    "detector mirror alone": replace(NOTHING, detector_mirror=True),
    "recipe less refinement": replace(RECIPE, refine_passes=0),
    "recipe less fallback": replace(RECIPE, fallback_scales=()),
    "recipe less candidates": replace(RECIPE, candidates=1),
    "recipe plus flip averaging": replace(RECIPE, flip=True),
    "recipe plus detector turns": replace(RECIPE, detector_turns=(1, 3, 2)),
    "recipe plus whole image always": replace(RECIPE, whole_always=True),
    "accurate (RECIPE)": RECIPE,
}
# Given boxes (--from-boxes): accuracy only.
BOX_CONFIGURATIONS = {
    "boxes, default": None,
    "boxes, accurate less the detector in the box": replace(RECIPE, box_detector=False),
    "boxes, accurate less box scales": replace(RECIPE, box_scales=(1.0,)),
    "boxes, accurate less agreeing crops averaged": replace(RECIPE, agree_within=0.0),
    "boxes, accurate (RECIPE)": RECIPE,
}
LABELS = {"limb": "limb_joints.json", "coco": "coco_keypoints.json", "posetrack": "posetrack18_keypoints.json",
          "mpii": "mpii.json"}


def landmarker_for(recipe, base: PoseLandmarker) -> PoseLandmarker:
    """A landmarker sharing ``base``'s models, default or accurate with ``recipe``."""
    lm = PoseLandmarker.__new__(PoseLandmarker)
    lm.__dict__.update(base.__dict__)
    lm.options = replace(base.options, accurate=recipe is not None)
    lm.recipe = recipe or RECIPE
    return lm


def accuracy(lm: PoseLandmarker, people: dict, from_boxes: bool = False) -> dict:
    limb = evaluate(people["limb"], lm, from_boxes=from_boxes)
    coco = evaluate(people["coco"], lm, from_boxes=from_boxes)
    posetrack = evaluate(people["posetrack"], lm, from_boxes=from_boxes)
    mpii = evaluate(people["mpii"], lm, from_boxes=from_boxes)
    return {"limb": limb.pck[0.1], "missed": limb.misses, "of": limb.persons, "coco_ap": coco.coco["AP"],
            "posetrack": posetrack.pck[0.1], "mpii": mpii.pck[0.1]}


def timings(landmarkers: dict, images: list, repeats: int) -> dict:
    """Median seconds per photo of each landmarker, passes interleaved in rotating order."""
    names = list(landmarkers)
    seconds = {n: [] for n in names}
    for lm in landmarkers.values():  # warm up
        for im in images[:2]:
            lm.detect(im)
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            t = time.perf_counter()
            for im in images:
                landmarkers[name].detect(im)
            seconds[name].append((time.perf_counter() - t) / len(images))
    return {n: statistics.median(s) for n, s in seconds.items()}


def video_fps(frames: int, repeats: int) -> dict:
    """Frames per second of ``posepipe video``'s tracker, default and accurate, on the street video
    (decoded once beforehand), runs interleaved; the median run each."""
    from posepipe import PoseTracker
    from posepipe.video.sources import open_source

    with open_source(str(SHARED / "video" / "street_720p_205f.avi"), 50.0) as source:
        images = [frame.image for frame, _ in zip(source, range(frames))]
    seconds = {"default": [], "accurate": []}
    for _ in range(repeats):
        for name in seconds:
            with PoseTracker(num_poses=2, accurate=name == "accurate") as tracker:
                t = time.perf_counter()
                for i, im in enumerate(images):
                    tracker.process(im, i * 20.0)
                seconds[name].append(time.perf_counter() - t)
    return {n: len(images) / statistics.median(s) for n, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per configuration")
    parser.add_argument("--only", nargs="*", help="configurations whose names start with these")
    parser.add_argument("--video", type=int, metavar="FRAMES",
                        help="instead, time posepipe video's tracker (2 people) on this many street frames")
    args = parser.parse_args()
    if args.video:
        from posepipe.models.cpu import describe

        fps = video_fps(args.video, args.repeats)
        print(describe())
        print(f"street_720p, {args.video} frames, 2 people, median of {args.repeats}: default {fps['default']:.1f} fps, "
              f"accurate {fps['accurate']:.1f} fps ({fps['default'] / fps['accurate']:.2f}x the time)")
        return
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is absent: the labels and photos are in ../shared")
    people = {key: load_labels(SHARED / "labels" / name) for key, name in LABELS.items()}
    images = [read_image(p) for p in sorted((SHARED / "images").glob("*.jpg"))]
    configurations = {n: r for n, r in CONFIGURATIONS.items()
                      if not args.only or any(n.startswith(o) for o in args.only) or r is None}
    from posepipe.models.cpu import describe

    with PoseLandmarker(num_poses=1) as base:
        landmarkers = {name: landmarker_for(recipe, base) for name, recipe in configurations.items()}
        rows = {name: accuracy(lm, people) for name, lm in landmarkers.items()}
        boxes = {name: accuracy(landmarker_for(recipe, base), people, from_boxes=True)
                 for name, recipe in BOX_CONFIGURATIONS.items() if not args.only or recipe is None}
        per_photo = timings(landmarkers, images, args.repeats)
    base_time = per_photo["default (MediaPipe's pipeline)"]
    print(describe())
    print(f"time: {len(images)} photos, median of {args.repeats} interleaved passes, decode excluded")
    header = "| configuration | limb PCK@0.1 | missed | COCO OKS AP | PoseTrack PCK@0.1 | MPII PCK@0.1 | ms/photo | × default |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, r in rows.items():
        t = per_photo[name]
        print(f"| {name} | {r['limb']:.3f} | {r['missed']}/{r['of']} | {r['coco_ap']:.3f} | {r['posetrack']:.3f} | "
              f"{r['mpii']:.3f} | {1000 * t:.1f} | {t / base_time:.2f} |")
    for name, r in boxes.items():
        print(f"| {name} | {r['limb']:.3f} | {r['missed']}/{r['of']} | {r['coco_ap']:.3f} | "
              f"{r['posetrack']:.3f} | {r['mpii']:.3f} | | |")


if __name__ == "__main__":
    main()
