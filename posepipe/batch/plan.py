"""What a batch is made of: the inputs given (files, folders searched recursively, globs,
manifests) expanded into sources, each a photo or a video, grouped into units of work.

Videos come first, longest first, so the longest one does not start last and leave the
other workers idle at the end; photos follow in chunks, small units that fill the gaps, the
last ones smallest.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import PosepipeError
from ..video.sources import IMAGE_SUFFIXES

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".wmv", ".flv",
                  ".3gp"}
MANIFEST_SUFFIXES = {".txt", ".csv", ".parquet"}
PHOTOS_PER_CHUNK = 16
# The first bytes of the image formats OpenCV reads, for files whose name does not say.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


@dataclass(frozen=True)
class Source:
    name: str  # as the dataset's ``source`` column names it: the path as given, or as found in a folder
    path: str  # absolute, so that workers elsewhere (other processes, other machines) read the same file
    kind: str  # "image" or "video"
    frames: int = 1  # expected frames, from the container for a video (0: unknown)
    seconds: float = 0.0  # a video's duration


@dataclass(frozen=True)
class Unit:
    """Work done and committed as one: a video, or a chunk of photos."""

    key: str  # from the sources' names, so a rerun writes the same part again rather than a second one
    kind: str
    sources: tuple[Source, ...]

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.sources)


def unit_key(kind: str, names: Iterable[str]) -> str:
    return kind[0] + hashlib.sha256("\n".join([kind, *names]).encode()).hexdigest()[:20]


def _manifest_entries(path: Path) -> list[str]:
    """Paths listed in a .txt (one a line), .csv or .parquet (a ``path`` column) manifest;
    relative ones are taken from the manifest's folder."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".txt":
            entries = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
            entries = [e for e in entries if e and not e.startswith("#")]
        elif suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as stream:
                rows = csv.DictReader(stream)
                if "path" not in (rows.fieldnames or ()):
                    raise PosepipeError(f"{path}: the manifest has no 'path' column")
                entries = [row["path"].strip() for row in rows if (row["path"] or "").strip()]
        else:
            import pyarrow.parquet as pq

            try:
                table = pq.read_table(path)
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
                raise PosepipeError(f"{path}: not a readable Parquet manifest ({str(exc).splitlines()[0]})") from None
            if "path" not in table.column_names:
                raise PosepipeError(f"{path}: the manifest has no 'path' column")
            entries = [str(p) for p in table.column("path").to_pylist() if p]
    except UnicodeDecodeError:
        raise PosepipeError(f"{path}: the manifest is not a text file") from None
    except OSError as exc:
        raise PosepipeError(f"cannot read the manifest {path}: {exc.strerror or exc}") from None
    return [e if Path(e).is_absolute() else str(path.parent / e) for e in entries]


def _media_in_folder(folder: Path) -> Iterator[str]:
    """Photos and videos under ``folder``, by name, hidden files and folders skipped; other
    files (notes, spreadsheets) are not inputs."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                yield str(Path(root) / name)


def expand(inputs: Iterable[str], in_manifest: bool = False) -> Iterator[str]:
    """Every file the inputs name, in order; a named file that does not exist is kept (it
    fails as a source, in its place)."""
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            yield from _media_in_folder(path)
        elif not path.exists() and glob.has_magic(given):
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                raise PosepipeError(f"no files match {given}")
            yield from expand(matches, in_manifest)
        elif path.suffix.lower() in MANIFEST_SUFFIXES and not in_manifest:
            if not path.exists():
                raise PosepipeError(f"{given}: manifest not found")
            yield from expand(_manifest_entries(path), in_manifest=True)
        else:
            yield str(path)


def kind_of(path: str) -> str:
    """"image" or "video": by the name's suffix, else by the file's first bytes."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return "image"  # unreadable: reported as the image reader words it
    if head.startswith(_IMAGE_MAGIC) and (not head.startswith(b"RIFF") or head[8:12] == b"WEBP"):
        return "image"
    return "video"


def probe_video(path: str) -> tuple[int, float]:
    """(frames, seconds) from the container's header; (0, 0.0) where it cannot say (the video
    then fails, or is counted, when it is processed)."""
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else \
                (container.duration or 0) / 1e6
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            return int(stream.frames or round(seconds * rate)), seconds
    except Exception:  # noqa: BLE001 - any failure here is reported when the video is processed
        return 0, 0.0


@dataclass
class Plan:
    units: list[Unit]
    sources: int  # every distinct input, finished ones included
    finished: int  # of them, done by an earlier run

    @property
    def frames(self) -> int:
        return sum(u.frames for u in self.units)


def make_plan(inputs: Iterable[str], finished: set[str], photos_per_chunk: int = PHOTOS_PER_CHUNK) -> Plan:
    """The units still to do: inputs whose name is in ``finished`` are skipped."""
    seen: set[str] = set()
    photos: list[Source] = []
    videos: list[Source] = []
    skipped = 0
    for name in expand(inputs):
        if name in seen:
            continue
        seen.add(name)
        if name in finished:
            skipped += 1
            continue
        path = os.path.abspath(name)
        if kind_of(path) == "image":
            photos.append(Source(name, path, "image"))
        else:
            videos.append(Source(name, path, "video", *probe_video(path)))
    if not seen:
        raise PosepipeError("no photos or videos found in the inputs")
    videos.sort(key=lambda v: -v.seconds)
    units = [Unit(unit_key("video", [v.name]), "video", (v,)) for v in videos]
    for chunk in _chunks(photos, photos_per_chunk):
        units.append(Unit(unit_key("image", [p.name for p in chunk]), "image", chunk))
    return Plan(units, len(seen), skipped)


def _chunks(photos: list[Source], size: int) -> Iterator[tuple[Source, ...]]:
    """Chunks of ``size`` photos, the last ``2 * size`` photos in chunks a quarter that size:
    the workers do not finish together, and the last ones then wait for a short chunk rather
    than a whole one (a 16-photo chunk is about half a second on one core)."""
    tail_start = max(0, len(photos) - 2 * size)
    for start in range(0, tail_start, size):
        yield tuple(photos[start:min(start + size, tail_start)])
    small = max(1, size // 4)
    for start in range(tail_start, len(photos), small):
        yield tuple(photos[start:start + small])
