"""Start-up as a user meets it: ``posepipe --help`` from start to exit, and ``posepipe video
VIDEO -o -`` from start to its first JSON line (interpreter, imports, opening the video and
both models with ``auto``'s cached verdict, the first frame's detector and landmark runs).
The two alternate, ``--runs`` times each after one untimed round; medians.

    python bench/startup.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from whole_process import POSEPIPE, STREET, posepipe_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def help_seconds(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command + ["--help"], env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def first_frame_seconds(command: list[str], env: dict, video: Path) -> float:
    """Seconds until the first JSON line arrives on standard output; the run is then stopped."""
    start = time.perf_counter()
    proc = subprocess.Popen(command + ["video", str(video), "-o", "-", "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline()
    seconds = time.perf_counter() - start
    proc.kill()
    proc.wait()
    if not line.startswith(b"{"):
        sys.exit("posepipe video wrote no JSON line")
    return seconds


def main() -> None:
    from posepipe.models.cpu import describe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="python that runs posepipe (default: this one)")
    parser.add_argument("--video", type=Path, default=STREET)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not args.video.is_file():
        sys.exit(f"no video at {args.video} (the street video comes with ../shared)")
    env = posepipe_env()
    command = [args.python, "-c", POSEPIPE]
    times: dict[str, list[float]] = {"help": [], "first frame": []}
    for round_ in range(args.runs + 1):  # round 0 warms the disk cache and auto's verdict
        help_s, first_s = help_seconds(command, env), first_frame_seconds(command, env, args.video)
        if round_:
            times["help"].append(help_s)
            times["first frame"].append(first_s)
    print(describe())
    print(f"start-up, median of {args.runs} alternating runs")
    print("| from start to | s | runs (s) |")
    print("|---|---:|---|")
    for name, label in (("help", "`posepipe --help` exits"),
                        ("first frame", f"`posepipe video {args.video.name} -o -` writes its first line")):
        runs = ", ".join(f"{t:.3f}" for t in times[name])
        print(f"| {label} | {statistics.median(times[name]):.3f} | {runs} |")


if __name__ == "__main__":
    main()
