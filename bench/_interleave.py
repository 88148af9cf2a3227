"""Interleaving for the side-by-side benchmarks: MediaPipe stays open in its own environment
and runs one timed pass each time it is asked, so that its passes and posepipe's alternate
and a machine that other work slows now and then slows both alike; each figure is then the
median of its passes."""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
from collections.abc import Callable

# Appended to a MediaPipe script that defines ``one_pass() -> dict``: one pass per "pass" line.
SERVE = r"""
import sys as _sys
print("@@" + json.dumps({"ready": True}), flush=True)
for _line in _sys.stdin:
    print("@@" + json.dumps(one_pass()), flush=True)
"""


class MediaPipeServer:
    """A MediaPipe script running in ``python`` that answers each ``run()`` with one pass."""

    def __init__(self, python: str, script: str, args: list[str]):
        self.log = tempfile.TemporaryFile("w+")  # MediaPipe logs to stderr; a full pipe would block it
        self.proc = subprocess.Popen([python, "-c", script + SERVE, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self._answer()

    def _answer(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        self.log.seek(0)
        lines = self.log.read().strip().splitlines()
        raise SystemExit(f"MediaPipe run failed: {lines[-1] if lines else 'no output'}")

    def run(self) -> dict:
        self.proc.stdin.write("pass\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.log.close()


def interleave(passes: dict[str, Callable[[], dict]], repeats: int) -> dict[str, list[dict]]:
    """``repeats`` rounds of one pass each, the order rotating round by round; each pass
    returns a dict with at least ``seconds``."""
    names = list(passes)
    results: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            results[name].append(passes[name]())
    return results


def median_seconds(results: list[dict]) -> float:
    return statistics.median(r["seconds"] for r in results)
