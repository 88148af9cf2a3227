"""Int8 quantisation schemes for the landmark model, natively and on an emulated AVX2 CPU.

``prepare`` quantises MediaPipe's full landmark model (no mask decoder) with each scheme,
calibrated on real crops, and saves evaluation crops; ``run`` runs one model on the crops
and saves its raw landmarks (this is the step to run under ``qemu-x86_64 -cpu Haswell``);
``compare`` prints each model's landmark shift from float, in crop pixels, and its speed.

    python bench/int8_schemes.py prepare --out /tmp/schemes
    python bench/int8_schemes.py run /tmp/schemes/u8s8.onnx /tmp/schemes/crops.npy /tmp/schemes/u8s8.native.npy
    qemu-x86_64 -cpu Haswell $(readlink -f .venv/bin/python) bench/int8_schemes.py run ... u8s8.haswell.npy
    python bench/int8_schemes.py compare --out /tmp/schemes
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
SHARED = ROOT.parent / "shared"
SCHEMES = ("u8s8", "u8s8-7bit", "u8u8", "u8u8-sym", "s8s8")


def crops(labels: list[str], copies: int = 1) -> np.ndarray:
    from posepipe.analysis.labels import load_labels
    from posepipe.training.data import Augmentation, CropDataset

    people = [p for name in labels for p in load_labels(SHARED / "data" / "labels" / name)]
    out = [CropDataset(people)[i]["image"] for i in range(len(people))]
    for seed in range(1, copies):
        varied = CropDataset(people, Augmentation(), seed=seed)
        out += [varied[i]["image"] for i in range(len(people))]
    return np.stack(out)


def prepare(args) -> None:
    from posepipe.models.assets import cache_dir, resolve_models
    from posepipe.landmarks import MASK_OUTPUT
    from posepipe.models.runtime import onnx_path_for, quantize_int8

    args.out.mkdir(parents=True, exist_ok=True)
    calibration = crops(["mpii.json", "posetrack18_keypoints.json"], copies=2)
    evaluation = crops(["coco_keypoints.json"], copies=4)
    np.save(args.out / "crops.npy", evaluation)
    float_model = onnx_path_for(resolve_models()[1], cache_dir(), (MASK_OUTPUT,))
    (args.out / "float.onnx").write_bytes(float_model.read_bytes())
    import onnxruntime.quantization as quantization
    from onnxruntime.quantization import QuantType

    shipped = quantization.quantize_static

    def with_scheme(scheme):
        """quantize_int8 (7-bit int8 weights, uint8 activations) turned into ``scheme``."""
        def quantize_static(*a, **kw):
            kw["reduce_range"] = scheme == "u8s8-7bit"
            if scheme.startswith("u8u8"):
                kw["weight_type"] = QuantType.QUInt8
                kw["extra_options"]["WeightSymmetric"] = scheme == "u8u8-sym"
            if scheme == "s8s8":
                kw["activation_type"] = QuantType.QInt8
                kw["extra_options"]["ActivationSymmetric"] = True
            return shipped(*a, **kw)
        return quantize_static

    for scheme in args.schemes:
        start = time.perf_counter()
        quantization.quantize_static = with_scheme(scheme)
        quantize_int8(float_model, args.out / f"{scheme}.onnx", calibration)
        quantization.quantize_static = shipped
        print(f"{scheme}: quantised in {time.perf_counter() - start:.0f} s", flush=True)


def run(args) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(args.model), opts, providers=["CPUExecutionProvider"])
    batch = np.load(args.crops)
    start = time.perf_counter()
    raw = np.concatenate([session.run(None, {session.get_inputs()[0].name: batch[i:i + 1]})[0]
                          for i in range(len(batch))])
    print(f"{args.model.name}: {len(batch)} crops in {time.perf_counter() - start:.1f} s", flush=True)
    np.save(args.target, raw.reshape(len(batch), 39, 5)[:, :33, :2])


def compare(args) -> None:
    import onnxruntime as ort

    names = ("float",) + tuple(args.schemes)
    batch = np.load(args.out / "crops.npy")[:1]
    sessions = {}
    for name in names:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = args.threads
        sessions[name] = ort.InferenceSession(str(args.out / f"{name}.onnx"), opts, providers=["CPUExecutionProvider"])
    blocks = {name: [] for name in names}
    for repeat in range(args.repeats + 1):  # the first round warms up; blocks interleaved: a busy machine slows all alike
        for name, session in sessions.items():
            feed = {session.get_inputs()[0].name: batch}
            start = time.perf_counter()
            for _ in range(30):
                session.run(None, feed)
            if repeat:
                blocks[name].append((time.perf_counter() - start) / 30 * 1000)
    reference = np.load(args.out / "float.native.npy")
    print(f"landmark shift from float in crop pixels (median over the 33 landmarks of a crop; median, 90th "
          f"percentile and max over {len(reference)} crops); ms: median of {args.repeats} blocks of 30 runs, native")
    print("| scheme | path | median shift px | 90th pct | max | ms | speed-up over float |")
    print("|---|---|---:|---:|---:|---:|---:|")
    float_ms = statistics.median(blocks["float"])
    for name in names:
        ms = statistics.median(blocks[name])
        for path in ("native", "haswell"):
            file = args.out / f"{name}.{path}.npy"
            if not file.is_file():
                continue
            per_crop = np.median(np.linalg.norm(np.load(file) - reference, axis=2), axis=1)
            print(f"| {name} | {path} | {np.median(per_crop):.2f} | {np.percentile(per_crop, 90):.2f} | "
                  f"{per_crop.max():.2f} | {ms:.2f} | {float_ms / ms:.2f}x |")
        native, haswell = (args.out / f"{name}.{p}.npy" for p in ("native", "haswell"))
        if native.is_file() and haswell.is_file():
            d = np.median(np.linalg.norm(np.load(native) - np.load(haswell), axis=2), axis=1)
            print(f"| {name} | native vs haswell | {np.median(d):.2f} | {np.percentile(d, 90):.2f} | {d.max():.2f} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--schemes", nargs="+", default=SCHEMES)
    r = sub.add_parser("run")
    r.add_argument("model", type=Path)
    r.add_argument("crops", type=Path)
    r.add_argument("target", type=Path)
    r.add_argument("--threads", type=int, default=0)
    c = sub.add_parser("compare")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--schemes", nargs="+", default=SCHEMES)
    c.add_argument("--threads", type=int, default=0)
    c.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    {"prepare": prepare, "run": run, "compare": compare}[args.command](args)


if __name__ == "__main__":
    main()
