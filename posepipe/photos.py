"""Many photos at once: one landmarker per core, each on one thread, working side by side.

These networks are too small for one run to keep two cores busy, so on 2 cores two
one-thread landmarkers get through more photos than one two-thread landmarker (the HTTP
service measured 42 against 64.5 photos/s; ``docs/speed.md``). Decoding, cropping and
drawing release the GIL in OpenCV, as inference does in LiteRT and ONNX Runtime, so
threads suffice. The first landmarker is opened before the work starts (it settles
``auto``'s measured choice), the others while the first one works.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

from .models.cpu import cpu_info
from .pipeline import PoseLandmarker, PoseLandmarkerOptions

Job = TypeVar("Job")
Result = TypeVar("Result")


def landmarker_count(options: PoseLandmarkerOptions, photos: int) -> int:
    """One-thread landmarkers to open: one per core, no more than there are photos; one
    landmarker (on the threads asked for) where a thread count was given, or on a GPU."""
    if options.threads or options.device == "cuda":
        return 1
    return max(1, min(cpu_info().usable_cores, photos))


class PhotoRunner:
    """``map(work, jobs)``: ``work(landmarker, job)`` for every job, results in the jobs' order.

    >>> with PhotoRunner(PoseLandmarkerOptions(), photos=len(paths)) as runner:   # doctest: +SKIP
    ...     for poses in runner.map(lambda lm, path: lm.detect(read_image(path)), paths):
    ...         ...
    """

    def __init__(self, options: PoseLandmarkerOptions, photos: int):
        self.count = landmarker_count(options, photos)
        self.options = options if self.count == 1 else replace(options, threads=1)
        self._free: queue.Queue[PoseLandmarker] = queue.Queue()
        self._opened: list[PoseLandmarker] = [PoseLandmarker(replace(self.options))]
        self._free.put(self._opened[0])
        self._executor = ThreadPoolExecutor(self.count, thread_name_prefix="posepipe-photos")
        self._opening = self._executor.submit(self._open_others) if self.count > 1 else None

    def _open_others(self) -> None:
        for _ in range(self.count - 1):
            landmarker = PoseLandmarker(replace(self.options))
            self._opened.append(landmarker)
            self._free.put(landmarker)

    def _run(self, work: Callable[[PoseLandmarker, Job], Result], job: Job) -> Result:
        landmarker = self._free.get()
        try:
            return work(landmarker, job)
        finally:
            self._free.put(landmarker)

    def map(self, work: Callable[[PoseLandmarker, Job], Result], jobs: Iterable[Job]) -> Iterator[Result]:
        """Results in order, at most two jobs per landmarker ahead of the one handed back."""
        pending: deque[Future] = deque()
        for job in jobs:
            pending.append(self._executor.submit(self._run, work, job))
            if len(pending) >= 2 * self.count:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        if self._opening is not None:
            self._opening.result()  # a landmarker that failed to open says so

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        for landmarker in self._opened:
            landmarker.close()

    def __enter__(self) -> "PhotoRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
