"""Request bodies read as they arrive, the size limit enforced while reading: a raw body is
the file itself; a ``multipart/form-data`` body holds it in its ``file`` field."""

from __future__ import annotations

import asyncio
import time
from typing import BinaryIO

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import ApiError

# Room for a multipart body's boundaries and part headers around the file.
MULTIPART_SLACK = 64 * 1024
FIELD = "file"


def size_text(limit: int) -> str:
    return f"{limit / 1e9:g} GB" if limit >= 1e9 else f"{limit / 1e6:g} MB"


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the upload is larger than this server's limit of {size_text(limit)}")


class _FilePart:
    """Feeds the multipart parser and keeps the ``file`` field's bytes and file name."""

    def __init__(self, boundary: bytes, sink: BinaryIO, limit: int):
        self.sink, self.limit = sink, limit
        self.size = 0
        self.filename: str | None = None
        self.found = False
        self._field = self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._data})

    def _begin(self) -> None:
        self._headers, self._in_file = {}, False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") == FIELD.encode() and not self.found:
            self.found = self._in_file = True
            name = params.get(b"filename")
            self.filename = name.decode("utf-8", "replace") if name else None

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return
        self.size += end - start
        if self.size > self.limit:
            raise _too_large(self.limit)
        self.sink.write(data[start:end])


async def receive_upload(request: Request, sink: BinaryIO, limit: int, timeout_s: float,
                         deadline: float | None = None) -> str | None:
    """Copy the uploaded file into ``sink``; returns its file name (multipart only) or None.

    ``timeout_s`` bounds each wait for the next piece of the body, ``deadline`` (a
    ``time.monotonic()`` value) the whole upload.
    """
    content_type = request.headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    multipart = kind == b"multipart/form-data"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + (MULTIPART_SLACK if multipart else 0):
        raise _too_large(limit)
    part = None
    if multipart:
        if not params.get(b"boundary"):
            raise ApiError(422, "the multipart body has no boundary in its Content-Type")
        part = _FilePart(params[b"boundary"], sink, limit)
    size = 0
    chunks = request.stream().__aiter__()
    while True:
        wait = timeout_s if deadline is None else min(timeout_s, deadline - time.monotonic())
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), max(wait, 0.001))
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise ApiError(408, "the upload took longer than this server's time limit") from None
        if part is not None:
            try:
                part.parser.write(chunk)
            except ApiError:
                raise
            except Exception as exc:  # noqa: BLE001 - the parser's own errors mean a malformed body
                raise ApiError(422, f"the multipart body is malformed ({exc})") from None
            continue
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        sink.write(chunk)
    if part is not None:
        part.parser.finalize()
        if not part.found:
            raise ApiError(422, f"the multipart body has no '{FIELD}' field")
        return part.filename
    return None
