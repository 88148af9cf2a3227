"""The folder a batch writes: one dataset of poses, a status table, the options it was made with.

    DIR/batch.json        the options that change results; a rerun with others is refused
    DIR/poses/part-*.parquet   the rows: source, frame, timestamp_ms, track_id, then the
                          columns of the long Parquet export (posepipe.video.exports)
    DIR/sources.parquet   one row per input: source, kind, frames, poses, status, error, seconds
    DIR/.staging/         parts being written (removed at the start and end of each run)

A unit's part file carries its sources' status rows in its own footer, and is moved into
``poses/`` by one rename once complete: a source's rows and its status appear together or
not at all, and ``poses/`` only ever holds whole files. What is finished is therefore what
the footers in ``poses/`` say; ``sources.parquet`` is rebuilt from them at the end of every
run (and an interrupted one).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import PosepipeError
from ..results import Poses
from ..video.exports import RowGroups, long_rows, parquet_schema

FINGERPRINT_FILE = "batch.json"
STATUS_KEY = b"posepipe.sources"  # footer metadata: the unit's status rows, as JSON
STATUS_COLUMNS = ("source", "kind", "frames", "poses", "status", "error", "seconds")


def pose_schema():
    import pyarrow as pa

    return pa.schema([pa.field("source", pa.string()), *parquet_schema()])


def status_schema():
    import pyarrow as pa

    return pa.schema([("source", pa.string()), ("kind", pa.string()), ("frames", pa.int32()),
                      ("poses", pa.int32()), ("status", pa.string()), ("error", pa.string()),
                      ("seconds", pa.float64())])


def status_row(source: str, kind: str, frames: int, poses: int, seconds: float, error: str | None = None) -> dict:
    return {"source": source, "kind": kind, "frames": frames, "poses": poses,
            "status": "error" if error else "ok", "error": error, "seconds": round(seconds, 4)}


class OutputError(PosepipeError):
    """The dataset cannot be written: the run stops (an input's failure never does)."""


def _cannot_write(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


class PartWriter:
    """One unit's rows into a staging file, flushed every ~64 frames so a long video never sits
    whole in memory; ``close`` adds the status rows to the footer and syncs the file to disk."""

    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        self.path = path
        self.schema = pose_schema()
        try:
            self.stream = open(path, "wb")
            self.writer = pq.ParquetWriter(self.stream, self.schema)
        except OSError as exc:
            raise _cannot_write(path, exc) from None
        self.groups = RowGroups(self.schema)

    def write(self, source: str, frame: int, timestamp_ms: float, poses: Poses) -> None:
        rows = long_rows(frame, timestamp_ms, poses)
        if rows is not None:
            rows["source"] = np.full(len(rows["frame"]), source, dtype=object)
        self._write_table(self.groups.add(rows))

    def _flush(self) -> None:
        self._write_table(self.groups.take())

    def _write_table(self, table) -> None:
        """A row group of the dataset's schema; None (nothing gathered yet): nothing."""
        if table is None:
            return
        try:
            self.writer.write_table(table)
        except OSError as exc:
            raise _cannot_write(self.path, exc) from None

    def close(self, statuses: list[dict]) -> None:
        try:
            self._flush()
            self.writer.add_key_value_metadata({STATUS_KEY: json.dumps(statuses)})
            self.writer.close()
            self.stream.flush()
            os.fsync(self.stream.fileno())
        except OSError as exc:
            raise _cannot_write(self.path, exc) from None
        finally:
            self.stream.close()

    def abandon(self) -> None:
        """Close and delete after a failure."""
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - the file is removed anyway
            pass
        self.stream.close()
        self.path.unlink(missing_ok=True)


def read_statuses(part: Path) -> list[dict] | None:
    """The status rows in a part's footer; None for a file that is not a whole part."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(part).metadata or {}
        return json.loads(metadata[STATUS_KEY])
    except Exception:  # noqa: BLE001 - unreadable or foreign: redone
        return None


class BatchDir:
    """An output folder, opened for one run: checked against the options, locked against a
    second run writing it at the same time, cleared of what an interrupted run left."""

    def __init__(self, root: str | Path, fingerprint: dict, overwrite: bool = False):
        self.root = Path(root)
        self.poses = self.root / "poses"
        self.staging = self.root / ".staging"
        self.sources_table = self.root / "sources.parquet"
        marker = self.root / FINGERPRINT_FILE
        if self.root.exists() and not self.root.is_dir():
            raise PosepipeError(f"{self.root} is a file, not a folder")
        if self.root.is_dir() and not marker.exists() and any(not p.name.startswith(".") for p in self.root.iterdir()):
            raise PosepipeError(f"{self.root} is not empty and was not made by posepipe batch; choose a new folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _cannot_write(self.root, exc) from None
        self._lock()
        try:
            self._prepare(marker, fingerprint, overwrite)
        except BaseException:
            self.close()
            raise

    def _prepare(self, marker: Path, fingerprint: dict, overwrite: bool) -> None:
        if overwrite:
            for path in (self.poses, self.staging):
                shutil.rmtree(path, ignore_errors=True)
            for path in (self.sources_table, marker):
                path.unlink(missing_ok=True)
        if marker.exists() and any(self.poses.glob("part-*.parquet")):  # options bind once something is done
            self._check(marker, fingerprint)
        else:
            self._write_atomically(marker, lambda f: f.write((json.dumps(fingerprint, indent=1) + "\n").encode()))
        shutil.rmtree(self.staging, ignore_errors=True)
        try:
            self.poses.mkdir(exist_ok=True)
            self.staging.mkdir()
        except OSError as exc:
            raise _cannot_write(self.root, exc) from None

    def _lock(self) -> None:
        """Two runs on one folder would each take the other's staging files for debris."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; one run at a time is up to the user
            self.lock = None
            return
        self.lock = open(self.root / ".lock", "w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.lock.close()
            raise PosepipeError(f"another posepipe batch is writing {self.root}") from None

    def _check(self, marker: Path, fingerprint: dict) -> None:
        try:
            made_with = json.loads(marker.read_text())
        except (OSError, ValueError):
            raise PosepipeError(f"{marker} is unreadable; start over with --overwrite") from None
        for key, value in fingerprint.items():
            if made_with.get(key) != value:
                raise PosepipeError(f"{self.root} was made with {key} = {made_with.get(key)!r}, not {value!r}; "
                                    "run with the same options, or start over with --overwrite")

    def _write_atomically(self, target: Path, write) -> None:
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        try:
            with open(temporary, "wb") as f:
                write(f)
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise _cannot_write(target, exc) from None

    def parts(self) -> list[Path]:
        return sorted(self.poses.glob("part-*.parquet"))

    def finished_sources(self) -> set[str]:
        """The sources committed by earlier runs; a part whose footer cannot be read (cut short by
        a crash of the machine) is removed, so its sources are done again."""
        done = set()
        for part in self.parts():
            statuses = read_statuses(part)
            if statuses is None:
                part.unlink()
                continue
            done.update(s["source"] for s in statuses)
        return done

    def staging_file(self, key: str) -> Path:
        """A fresh name per attempt: a retried unit never writes into its lost attempt's file."""
        return self.staging / f"{key}-{uuid.uuid4().hex[:8]}.parquet"

    def commit(self, key: str, staged: Path) -> None:
        """Make a unit's rows and status visible, together, by one rename."""
        try:
            os.replace(staged, self.poses / f"part-{key}.parquet")
        except OSError as exc:
            raise _cannot_write(self.poses, exc) from None

    def statuses(self) -> Iterator[dict]:
        for part in self.parts():
            yield from read_statuses(part) or ()

    def write_sources_table(self) -> None:
        """``sources.parquet`` from the footers, streamed a part at a time."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = status_schema()

        def write(f):
            with pq.ParquetWriter(f, schema) as writer:
                for part in self.parts():
                    rows = read_statuses(part)
                    if rows:
                        writer.write_table(pa.Table.from_pylist(rows, schema=schema))

        self._write_atomically(self.sources_table, write)

    def close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.lock is not None:
            self.lock.close()
