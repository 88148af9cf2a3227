"""``auto``: the faster backend for a model on the machine it runs on, measured there.

Which of LiteRT (XNNPACK) and ONNX Runtime (MLAS) runs a model faster depends on the CPU
(AVX2, AVX-512, VNNI: each picks other kernels), the core count, the threads asked for, the
runtimes' versions, the model (the landmark model without its mask decoder is another
network, for both runtimes) and how busy the machine is. So
the first time a model is opened with ``auto`` on a machine, both backends run it on a
random input, two warm-up runs then 5-15 timed runs each (0.2-0.7 s a model, plus the
one-off ONNX conversion), alternating run by run, while ``/proc/stat`` tells how much of the
CPU other processes took meanwhile:

* quiet (others took under a quarter): the backend with the shorter fastest run wins, and
  the verdict is kept in the model cache directory (``auto-backend/``) under a key of all
  the above but the load: CPU model, family, flags, usable cores, threads, model hash,
  runtime versions. Later opens read it and load only the winner.
* busy: the backend with the shorter median run wins (what the machine does under its
  present load: a 2-thread ONNX Runtime run loses far more to other processes than a LiteRT
  one, 25 against 38 ms medians on a busy 2-core Zen 4 that runs them in 8 and 5.5 ms
  idle), and that verdict serves for an hour, after which the next open measures again
  until a quiet measurement settles it.

Either way ONNX Runtime must beat LiteRT by more than ``TIE_MARGIN`` to be chosen: the
models are timed alone, but in the pipeline the decoder, the writer or a second landmarker
share the cores, and ONNX Runtime's workers, which wait on each other at every operator, lose
more to them than LiteRT's (quiet Zen 4: 4.98 against 5.00 ms alone, yet 7.8 against 6.8 ms a
frame in the tracking loop; ``docs/speed.md``).

Without ``/proc/stat`` (macOS, Windows) every measurement counts as quiet. Delete
``<cache>/auto-backend`` to measure again; ``--backend litert|onnxruntime`` skips all of it.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .assets import sha256_of, write_file_atomically
from .cpu import CpuInfo, cpu_info, cpu_ticks, others_share, runtime_versions

CANDIDATES = ("litert", "onnxruntime")
# Bump when the measurement itself changes, so old verdicts are measured again.
_MEASURE_VERSION = 3  # 2: LiteRT's candidate lost the unused mask decoder too; 3: TIE_MARGIN
WARMUP_RUNS = 2
MIN_RUNS, MAX_RUNS = 5, 15
BUDGET_S = 0.5  # timed runs stop after this, once MIN_RUNS each are in
QUIET = 0.25  # a measurement decides when other processes took under this share of the CPU time
RETRY_S = 3600.0  # a busy machine's verdict serves this long, then the next open measures again
TIE_MARGIN = 0.10  # ONNX Runtime is chosen only where it is faster than LiteRT by more than this share


def choice_key(model_sha256: str, drop_outputs: tuple[int, ...], threads: int, cpu: CpuInfo | None = None,
               versions: dict[str, str | None] | None = None, extra: dict | None = None) -> dict:
    """Everything a measured verdict depends on (JSON-ready): a change to any of it measures again."""
    return {"measure": _MEASURE_VERSION, "model_sha256": model_sha256, "drop_outputs": sorted(drop_outputs),
            "threads": threads, "cpu": (cpu or cpu_info()).key(),
            "versions": versions if versions is not None else runtime_versions(), **(extra or {})}


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def verdict_path(cache_dir: Path, model_name: str, key: dict) -> Path:
    return Path(cache_dir) / "auto-backend" / f"{model_name}-{key_digest(key)}.json"


def read_record(path: Path, key: dict) -> dict | None:
    """The cached record for ``key``, or None (no file, unreadable, or made for another key)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or record.get("backend") not in CANDIDATES:
        return None
    return record


def settled(record: dict | None, now: float | None = None) -> bool:
    """Whether a record decides now: measured quietly, or busy less than ``RETRY_S`` ago."""
    if record is None:
        return False
    age = (now or time.time()) - float(record.get("time", 0))
    return record.get("quiet") is True or 0 <= age < RETRY_S


def write_record(path: Path, record: dict) -> None:
    """Write through a temporary name and a rename; a cache that cannot be written is skipped
    (the next open measures again)."""
    try:
        write_file_atomically(path, json.dumps(record, indent=1).encode())
    except OSError:
        pass


def time_models(models: dict, batch: np.ndarray, warmup: int = WARMUP_RUNS, min_runs: int = MIN_RUNS,
                max_runs: int = MAX_RUNS, budget_s: float = BUDGET_S) -> dict:
    """Time one ``run(batch)`` per model, runs alternating between the models (each one's
    threads have gone quiet by its next run, as between frames in the pipeline).

    Returns ``{"best_ms": {name: fastest run}, "median_ms": {...}, "runs": timed runs each,
    "others_share": share of the CPU other processes took meanwhile, or None}``."""
    for model in models.values():
        for _ in range(warmup):
            model.run(batch)
    times: dict[str, list[float]] = {name: [] for name in models}
    ticks = cpu_ticks()
    start = time.perf_counter()
    runs = 0
    while runs < max_runs and (runs < min_runs or time.perf_counter() - start < budget_s):
        order = list(models.items()) if runs % 2 == 0 else list(models.items())[::-1]
        for name, model in order:
            t = time.perf_counter()
            model.run(batch)
            times[name].append(time.perf_counter() - t)
        runs += 1
    share = others_share(ticks, cpu_ticks())
    return {"best_ms": {name: round(1000 * min(v), 3) for name, v in times.items()},
            "median_ms": {name: round(1000 * statistics.median(v), 3) for name, v in times.items()},
            "runs": runs, "others_share": None if share is None else round(share, 3)}


def winner(times_ms: dict[str, float]) -> str:
    """LiteRT, unless ONNX Runtime's time is shorter by more than ``TIE_MARGIN`` of LiteRT's."""
    if times_ms["onnxruntime"] < (1 - TIE_MARGIN) * times_ms["litert"]:
        return "onnxruntime"
    return "litert"


@dataclass
class Choice:
    backend: str
    model: object  # the opened winner
    source: str  # "cache" (a record that decides), "process" (measured earlier in this process), "measured"
    record: dict | None = None  # what was (or would have been) cached
    path: Path | None = None  # the record's file


# Backends measured in this process, by key digest: one process measures a model once, even
# where the cache cannot be written.
_MEASURED: dict[str, str] = {}


def choose(model_path: Path, drop_outputs: tuple[int, ...], threads: int, cache_dir: Path,
           open_backend: Callable[[str], object], key: dict | None = None, quiet: float = QUIET) -> Choice:
    """The faster of ``CANDIDATES`` for ``model_path`` here: a record in the cache that decides,
    or measured now. ``open_backend(name)`` opens the model on one backend; ``quiet``: the share of
    the CPU other processes may take while a measurement still decides."""
    model_path = Path(model_path)
    key = key or choice_key(sha256_of(model_path), drop_outputs, threads)
    path = verdict_path(cache_dir, model_path.stem, key)
    record = read_record(path, key)
    if settled(record):
        return Choice(record["backend"], open_backend(record["backend"]), "cache", record, path)
    digest = key_digest(key)
    if digest in _MEASURED:
        return Choice(_MEASURED[digest], open_backend(_MEASURED[digest]), "process", record, path)
    models = {name: open_backend(name) for name in CANDIDATES}
    h, w = models["litert"].input_size
    batch = np.random.default_rng(0).uniform(0, 1, (1, 3, h, w)).astype(np.float32)
    timing = time_models(models, batch)
    is_quiet = timing["others_share"] is None or timing["others_share"] < quiet
    by = "best_ms" if is_quiet else "median_ms"
    backend = winner(timing[by])
    record = {"backend": backend, "quiet": is_quiet, "by": by,
              "attempts": (record or {}).get("attempts", 0) + 1,
              "time": time.time(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **timing, "key": key}
    write_record(path, record)
    _MEASURED[digest] = backend
    return Choice(backend, models[backend], "measured", record, path)
