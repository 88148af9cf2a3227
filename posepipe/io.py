"""Stage 5, input and output: reading images safely, listing inputs, the JSON-lines contract."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, TextIO

import cv2
import numpy as np

from .errors import ImageError, PosepipeError
from .pipeline import as_boxes, as_rgb_uint8
from .results import Poses

# OpenCV refuses images above 2**30 pixels by default; say so in our words first.
MAX_PIXELS = 1 << 30


def read_image(path: str | Path) -> np.ndarray:
    """An RGB uint8 image from a file (EXIF orientation applied), or :class:`ImageError`."""
    path = Path(path)
    if not path.exists():
        raise ImageError("file not found")
    if path.is_dir():
        raise ImageError("is a folder, not an image")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"cannot read the file ({exc.strerror or exc})") from None
    return decode_image(data.tobytes())


def decode_image(raw: bytes) -> np.ndarray:
    """An RGB uint8 image from the bytes of an image file (EXIF orientation applied), or
    :class:`ImageError`."""
    if not raw:
        raise ImageError("the file is empty")
    # OpenCV decodes a cut-off JPEG silently (grey below the cut). Its end-of-image marker
    # must close the file; an earlier one may belong to an EXIF thumbnail, and some
    # cameras append a trailer, hence the tolerance.
    if raw[:2] == b"\xff\xd8" and raw.rfind(b"\xff\xd9") < max(2, len(raw) - 65536):
        raise ImageError("the JPEG file is truncated (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ImageError("not a readable image (unknown format or corrupt data)")
    return as_rgb_uint8(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise PosepipeError(f"cannot encode an image as {path.suffix}")
    try:
        encoded.tofile(str(path))
    except OSError as exc:
        raise PosepipeError(f"cannot write {path}: {exc.strerror or exc}") from None


def why_not_writable(path: Path) -> str | None:
    """Why a file cannot be written at ``path``, or None; missing folders count as ones to make."""
    if path.is_dir():
        return f"{path} is a folder"
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "permission denied"
    return None


def expand_inputs(paths: list[str]) -> Iterator[Path]:
    """Files in the order given; a folder contributes its files sorted by name (hidden ones skipped)."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.is_file() and not child.name.startswith("."):
                    yield child
        else:
            yield path  # a missing file is reported by read_image, in its place


def image_record(source: str, image: np.ndarray, poses: Poses, frame: int = 0,
                 timestamp_ms: float | None = None) -> dict:
    """One line of the contract; video frames add ``timestamp_ms`` (from the container)."""
    height, width = image.shape[:2]
    record = {"source": source, "frame": frame}
    if timestamp_ms is not None:
        record["timestamp_ms"] = round(float(timestamp_ms), 3)
    return record | {"width": width, "height": height, "poses": poses.to_records()}


def error_record(source: str, message: str) -> dict:
    return {"source": source, "error": message}


class JsonLinesWriter:
    """One JSON object per line, each flushed whole, so an interrupted run leaves valid lines."""

    def __init__(self, target: str | Path | None):
        self.path = None if target in (None, "-") else Path(target)
        try:
            if self.path is not None and self.path.parent != Path(""):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.stream: TextIO = open(self.path, "w", encoding="utf-8") if self.path else os.fdopen(
                os.dup(1), "w", encoding="utf-8")
        except OSError as exc:
            raise PosepipeError(f"cannot write {target}: {exc.strerror or exc}") from None

    def write(self, record: dict) -> None:
        self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> "JsonLinesWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def json_lines(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, value) for each non-blank line of a JSON-lines file; a line that is not
    JSON stops the reading with one sentence naming it."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise PosepipeError(f"{path}: line {number} is not JSON ({exc.msg})") from None


def read_boxes(path: str | Path) -> dict[str, np.ndarray]:
    """People's boxes per image from a JSON-lines file of ``{"source": "<file name or path>",
    "boxes": [[x, y, w, h], ...]}`` (pixels), keyed by the source's file name; one sentence for
    a file that is missing, not JSON lines, or has a record or box that is not so."""
    path = Path(path)
    if not path.is_file():
        raise PosepipeError(f"{path}: boxes file not found")
    boxes: dict[str, np.ndarray] = {}
    try:
        for number, record in json_lines(path):
            where = f"{path}: line {number}"
            if not isinstance(record, dict) or not isinstance(record.get("source"), str) or "boxes" not in record:
                raise PosepipeError(f'{where} is not {{"source": "<file name>", "boxes": [[x, y, w, h], ...]}}')
            name = Path(record["source"]).name
            if name in boxes:
                raise PosepipeError(f"{where} names {name} a second time")
            try:
                boxes[name] = as_boxes(record["boxes"])
            except PosepipeError as exc:
                raise PosepipeError(f"{where}: {exc}") from None
    except UnicodeDecodeError:
        raise PosepipeError(f"{path} is not a text file") from None
    return boxes
