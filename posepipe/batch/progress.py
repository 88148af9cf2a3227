"""The progress bar of a batch, on standard error: sources done of all, frames per second,
time left (from frames, which measure the work better than sources do), failures."""

from __future__ import annotations

import time

from .work import Outcome


class BatchProgress:
    def __init__(self, enabled: bool, sources: int, finished: int, frames: int):
        self.sources, self.done, self.failures, self.frames = sources, finished, 0, 0
        self.started = time.perf_counter()
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.fields[sources]}"), BarColumn(), TextColumn("{task.fields[fps]:>6.1f} frames/s"),
                TimeElapsedColumn(), TextColumn("elapsed,"), TimeRemainingColumn(), TextColumn("left"),
                TextColumn("{task.fields[failed]}"),
                console=Console(stderr=True))
            self.task = self.bar.add_task("batch", total=max(1, frames), **self._fields())

    def _fields(self) -> dict:
        fps = self.frames / max(1e-9, time.perf_counter() - self.started)
        failed = f"[red]{self.failures} failed" if self.failures else ""
        return {"sources": f"{self.done}/{self.sources} sources", "fps": fps, "failed": failed}

    def record(self, outcome: Outcome) -> None:
        self.done += len(outcome.statuses)
        self.failures += outcome.failures
        self.frames += outcome.frames
        if self.bar:
            self.bar.update(self.task, completed=self.frames, **self._fields())

    def __enter__(self) -> "BatchProgress":
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, kind, *exc) -> None:
        if self.bar:
            if kind is None:  # the estimate of frames was the containers'; the work is done
                self.bar.update(self.task, completed=self.bar.tasks[0].total)
            self.bar.stop()
