"""Video results as tables: a wide CSV for spreadsheets, a long typed Parquet for pandas/polars/DuckDB,
and one reader that turns any of posepipe's outputs (JSONL, CSV, Parquet) back into per-person series."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import PosepipeError
from ..io import json_lines
from ..results import Poses
from ..topology import LANDMARK_NAMES, NUM_LANDMARKS

CSV_COLUMNS: tuple[str, ...] = (
    "frame", "timestamp_ms", "track_id", "score",
    *(f"{name}_{c}" for name in LANDMARK_NAMES for c in ("x", "y", "z", "visibility")),
    *(f"world_{name}_{c}" for name in LANDMARK_NAMES for c in ("x", "y", "z")),
)
PARQUET_COLUMNS: tuple[str, ...] = (
    "frame", "timestamp_ms", "track_id", "landmark", "landmark_index", "x", "y", "z", "visibility", "presence",
    "world_x", "world_y", "world_z",
)
ROWS_PER_GROUP_FRAMES = 64  # frames buffered per Parquet row group: small files stay one group, long videos stream


def open_for_writing(path: str | Path, mode: str = "w", **kwargs) -> IO:
    """``open`` that creates parent folders and fails as one sentence."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, mode, **kwargs)
    except FileExistsError:  # what mkdir says of a parent that is a file
        raise PosepipeError(f"cannot write {path}: {path.parent} is a file, not a folder") from None
    except OSError as exc:
        raise PosepipeError(f"cannot write {path}: {exc.strerror or exc}") from None


def _track_ids(poses: Poses) -> np.ndarray:
    """The tracker's ids, or the person's position in the frame when there is no tracker."""
    return np.arange(len(poses)) if poses.track_ids is None else np.asarray(poses.track_ids)


def _text(values: np.ndarray) -> list[str]:
    """float32 values in their shortest exact form, so the CSV reads back bit for bit."""
    return [str(v) for v in values.astype(np.float32).ravel()]


class CsvWriter:
    """Wide CSV: one row per frame and person (see ``CSV_COLUMNS``), flushed per frame so an
    interrupted run leaves whole rows. Frames without people write no row."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.stream = open_for_writing(self.path, "w", newline="", encoding="utf-8")
        self.rows = csv.writer(self.stream)
        self._guard(self.rows.writerow, CSV_COLUMNS)

    def _guard(self, write, *args) -> None:
        try:
            write(*args)
            self.stream.flush()
        except OSError as exc:
            raise PosepipeError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def write(self, frame: int, timestamp_ms: float, poses: Poses) -> None:
        rows = []
        for i, track_id in enumerate(_track_ids(poses)):
            image = np.concatenate([poses.landmarks[i], poses.visibility[i][:, None]], axis=1)  # (33, 4)
            rows.append([int(frame), round(float(timestamp_ms), 3), int(track_id), str(np.float32(poses.scores[i])),
                         *_text(image), *_text(poses.world_landmarks[i])])
        if rows:
            self._guard(self.rows.writerows, rows)

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> CsvWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise PosepipeError("Parquet needs pyarrow: pip install 'posepipe[analysis]'") from None
    return pa, pq


def parquet_schema(source: str | None = None, width: int | None = None, height: int | None = None):
    """Long format, one row per frame × person × landmark; ``landmark`` is dictionary-encoded."""
    pa, _ = _pyarrow()
    f32 = pa.float32()
    fields = [("frame", pa.int32()), ("timestamp_ms", pa.float64()), ("track_id", pa.int32()),
              ("landmark", pa.dictionary(pa.int8(), pa.string())), ("landmark_index", pa.int8()),
              *((name, f32) for name in PARQUET_COLUMNS[5:])]
    metadata = {key: str(value) for key, value in (("source", source), ("width", width), ("height", height))
                if value is not None}
    return pa.schema(fields, metadata=metadata or None)


def long_rows(frame: int, timestamp_ms: float, poses: Poses) -> dict[str, np.ndarray] | None:
    """One frame's rows of the long format as columns (``landmark`` left to ``long_table``);
    None when the frame has no person."""
    n = len(poses)
    if not n:
        return None
    rows = n * NUM_LANDMARKS
    lms, world = poses.landmarks.reshape(rows, 3), poses.world_landmarks.reshape(rows, 3)
    return {
        "frame": np.full(rows, frame, np.int32), "timestamp_ms": np.full(rows, timestamp_ms, np.float64),
        "track_id": np.repeat(_track_ids(poses), NUM_LANDMARKS).astype(np.int32),
        "landmark_index": np.tile(np.arange(NUM_LANDMARKS, dtype=np.int8), n),
        "x": lms[:, 0], "y": lms[:, 1], "z": lms[:, 2],
        "visibility": poses.visibility.ravel(), "presence": poses.presence.ravel(),
        "world_x": world[:, 0], "world_y": world[:, 1], "world_z": world[:, 2],
    }


def long_table(parts: list[dict[str, np.ndarray]], schema):
    """An Arrow table of ``schema`` from ``long_rows`` parts (each may add columns of the schema's
    own, such as a ``source``)."""
    pa, _ = _pyarrow()
    columns = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    names = pa.array(LANDMARK_NAMES, pa.string())
    columns["landmark"] = pa.DictionaryArray.from_arrays(pa.array(columns["landmark_index"]), names)
    arrays = [columns[f.name] if f.name == "landmark" else pa.array(columns[f.name], f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


class RowGroups:
    """Frames' long rows (``long_rows``) gathered into one table of ``schema`` per
    ``ROWS_PER_GROUP_FRAMES`` frames: a Parquet row group, so a long video never sits whole in
    memory. ``add`` returns a table when a group is full; ``take`` returns what is left."""

    def __init__(self, schema):
        self.schema = schema
        self.parts: list[dict[str, np.ndarray]] = []
        self.frames = 0

    def add(self, rows: dict[str, np.ndarray] | None):
        if rows is not None:
            self.parts.append(rows)
        self.frames += 1
        return self.take() if self.frames >= ROWS_PER_GROUP_FRAMES else None

    def take(self):
        """The rows gathered since the last table, as a table; None when there are none."""
        self.frames = 0
        if not self.parts:
            return None
        table, self.parts = long_table(self.parts, self.schema), []
        return table


class ParquetWriter:
    """Long Parquet (see ``parquet_schema``), one row group per ~64 frames. ``close`` always
    leaves a readable file, with the schema alone when no person was found."""

    def __init__(self, path: str | Path, *, source: str | None = None, width: int | None = None,
                 height: int | None = None):
        _, pq = _pyarrow()
        self.path = Path(path)
        self.schema = parquet_schema(source, width, height)
        self.stream = open_for_writing(self.path, "wb")
        self.writer = pq.ParquetWriter(self.stream, self.schema)
        self.groups = RowGroups(self.schema)

    def write(self, frame: int, timestamp_ms: float, poses: Poses) -> None:
        self._write(self.groups.add(long_rows(frame, timestamp_ms, poses)))

    def _flush(self) -> None:
        self._write(self.groups.take())

    def _write(self, table) -> None:
        if table is None:
            return
        try:
            self.writer.write_table(table)
        except OSError as exc:
            raise PosepipeError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        try:
            self._flush()
            self.writer.close()
        except OSError as exc:
            raise PosepipeError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        finally:
            self.stream.close()

    def __enter__(self) -> ParquetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class PoseSeries:
    """One person (track) over time: what analyses such as joint angles work on."""

    source: str
    track_id: int
    frame: np.ndarray  # (T,) int64
    timestamp_ms: np.ndarray  # (T,) float64
    landmarks: np.ndarray  # (T, 33, 3) image pixels
    visibility: np.ndarray  # (T, 33)
    world_landmarks: np.ndarray  # (T, 33, 3) metres

    def __len__(self) -> int:
        return len(self.frame)


class _Collector:
    """Gathers (frame, time, landmarks, visibility, world) per track id, in file order."""

    def __init__(self):
        self.tracks: dict[int, list[tuple]] = {}

    def add(self, track_id: int, frame: int, timestamp_ms: float, landmarks, visibility, world) -> None:
        self.tracks.setdefault(int(track_id), []).append((frame, timestamp_ms, landmarks, visibility, world))

    def series(self, path: Path, source: str) -> dict[int, PoseSeries]:
        if not self.tracks:
            raise PosepipeError(f"{path}: no poses found")
        out = {}
        for track_id in sorted(self.tracks):
            frame, time, lms, vis, world = zip(*self.tracks[track_id])
            out[track_id] = PoseSeries(
                source, track_id, np.asarray(frame, np.int64), np.asarray(time, np.float64),
                np.asarray(lms, np.float32).reshape(-1, NUM_LANDMARKS, 3),
                np.asarray(vis, np.float32).reshape(-1, NUM_LANDMARKS),
                np.asarray(world, np.float32).reshape(-1, NUM_LANDMARKS, 3))
        return out


def _points(items: list, keys: tuple[str, ...]) -> list[list[float]]:
    if len(items) != NUM_LANDMARKS:
        raise ValueError(f"{len(items)} landmarks instead of {NUM_LANDMARKS}")
    return [[float(item[k]) for k in keys] for item in items]


def _load_jsonl(path: Path) -> dict[int, PoseSeries]:
    """Records without ``timestamp_ms`` are stills (the ``image`` command): each counts as one
    frame, numbered by its position in the file, with that index standing in for its time."""
    found, sources = _Collector(), set()
    for number, record in json_lines(path):
        where = f"{path} line {number}"
        if not isinstance(record, dict):
            raise PosepipeError(f"{where}: not a posepipe record (expected a JSON object)")
        if "error" in record:
            continue
        try:
            still = "timestamp_ms" not in record
            frame = number - 1 if still else int(record["frame"])
            time = float(frame if still else record["timestamp_ms"])
            for i, pose in enumerate(record["poses"]):
                image = np.asarray(_points(pose["landmarks"], ("x", "y", "z", "visibility")))
                world = _points(pose["world_landmarks"], ("x", "y", "z"))
                found.add(pose.get("track_id", i), frame, time, image[:, :3], image[:, 3], world)
        except KeyError as exc:
            raise PosepipeError(f"{where}: not a posepipe record (missing field {exc})") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise PosepipeError(f"{where}: not a posepipe record ({exc})") from None
        sources.add(str(record.get("source", path)))
    return found.series(path, sources.pop() if len(sources) == 1 else str(path))


def _load_csv(path: Path) -> dict[int, PoseSeries]:
    found = _Collector()
    with open(path, newline="", encoding="utf-8") as stream:
        rows = csv.reader(stream)
        header = next(rows, None)
        missing = [c for c in CSV_COLUMNS if c not in (header or ())]
        if missing:
            raise PosepipeError(f"{path}: not a posepipe CSV (no column {missing[0]!r})")
        column = {name: i for i, name in enumerate(header)}
        image = [column[f"{n}_{c}"] for n in LANDMARK_NAMES for c in ("x", "y", "z", "visibility")]
        world = [column[f"world_{n}_{c}"] for n in LANDMARK_NAMES for c in ("x", "y", "z")]
        for number, row in enumerate(rows, 2):
            try:
                values = np.array([row[i] for i in image], np.float32).reshape(NUM_LANDMARKS, 4)
                found.add(int(row[column["track_id"]]), int(row[column["frame"]]),
                          float(row[column["timestamp_ms"]]), values[:, :3], values[:, 3],
                          np.array([row[i] for i in world], np.float32))
            except (IndexError, ValueError) as exc:
                raise PosepipeError(f"{path} line {number}: bad row ({exc})") from None
    return found.series(path, str(path))


def _xyz(columns: dict[str, np.ndarray], prefix: str, rows: np.ndarray) -> np.ndarray:
    return np.stack([columns[prefix + c][rows] for c in "xyz"], -1).reshape(-1, NUM_LANDMARKS, 3)


def _load_parquet(path: Path) -> dict[int, PoseSeries]:
    pa, pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise PosepipeError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in PARQUET_COLUMNS if c not in table.column_names]
    if missing:
        raise PosepipeError(f"{path}: not a posepipe Parquet file (no column {missing[0]!r})")
    col = {name: table.column(name).to_numpy() for name in PARQUET_COLUMNS if name != "landmark"}
    if not len(table):
        raise PosepipeError(f"{path}: no poses found")
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    out = {}
    for track_id in np.unique(col["track_id"]):
        rows = np.flatnonzero(col["track_id"] == track_id)
        rows = rows[np.lexsort((col["landmark_index"][rows], col["frame"][rows]))]
        if len(rows) % NUM_LANDMARKS or np.any(
                col["landmark_index"][rows].reshape(-1, NUM_LANDMARKS) != np.arange(NUM_LANDMARKS)):
            raise PosepipeError(f"{path}: track {track_id} does not have all 33 landmarks in every frame")
        first = rows[::NUM_LANDMARKS]
        out[int(track_id)] = PoseSeries(
            metadata.get("source", str(path)), int(track_id), col["frame"][first].astype(np.int64),
            col["timestamp_ms"][first].astype(np.float64), _xyz(col, "", rows),
            col["visibility"][rows].reshape(-1, NUM_LANDMARKS), _xyz(col, "world_", rows))
    return out


def load_pose_table(path: str | Path) -> dict[int, PoseSeries]:
    """Each person's series, keyed and sorted by track id, from posepipe's JSONL, CSV or Parquet
    (chosen by suffix). Error records in JSONL are skipped; anything else unreadable is a
    :class:`PosepipeError` naming the file (and line)."""
    path = Path(path)
    loaders = {".jsonl": _load_jsonl, ".json": _load_jsonl, ".csv": _load_csv, ".parquet": _load_parquet}
    loader = loaders.get(path.suffix.lower())
    if loader is None:
        raise PosepipeError(f"{path}: unknown kind of file (expected .jsonl, .json, .csv or .parquet)")
    if not path.exists():
        raise PosepipeError(f"{path}: file not found")
    if path.is_dir():
        raise PosepipeError(f"{path}: is a folder, not a file")
    try:
        return loader(path)
    except UnicodeDecodeError:
        raise PosepipeError(f"{path}: not a text file") from None
    except OSError as exc:
        raise PosepipeError(f"cannot read {path}: {exc.strerror or exc}") from None
