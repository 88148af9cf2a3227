"""Uploaded pictures, measured before they are decoded.

A small file can declare a huge picture (a PNG of zeros compresses a thousandfold), and the
decoder allocates what the header says. So the width and height are read from the header
first, by the few lines below per format, and only pictures under the pixel limit are handed
to OpenCV. Only the formats whose headers are read here are accepted, so no other decoder
ever sees an upload.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import ImageError
from ..io import decode_image
from .errors import ApiError

FORMATS = "JPEG, PNG, WebP or BMP"
# Nothing smaller can hold a person the detector (224×224 input) could find.
MIN_SIDE = 16

# JPEG start-of-frame markers (all codings); C4, C8 and CC share the range but are not frames.
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        if marker in _SOF:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def declared_size(data: bytes) -> tuple[str, tuple[int, int] | None] | None:
    """(format, (width, height) from its header, or None when the header is cut short or
    broken), or None for a format this server does not read."""
    if data[:2] == b"\xff\xd8":
        return "JPEG", _jpeg_size(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        ok = len(data) >= 24 and data[12:16] == b"IHDR"
        return "PNG", struct.unpack(">II", data[16:24]) if ok else None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP", _webp_size(data)
    if data[:2] == b"BM":
        return "BMP", _bmp_size(data)
    return None


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """The uploaded picture as RGB uint8, or :class:`ApiError` with the status that fits:
    413 over the pixel limit, 415 not a picture this server reads, 422 a broken one."""
    if not data:
        raise ApiError(422, "the upload is empty")
    found = declared_size(data)
    if found is None:
        raise ApiError(415, f"the upload is not an image this server reads ({FORMATS})")
    kind, size = found
    if size is None or 0 in size:
        raise ApiError(422, f"the {kind} header is broken or cut short")
    width, height = size
    if width * height > max_pixels:
        raise ApiError(413, f"the image is {width}×{height} pixels ({width * height / 1e6:.0f} MP), more than "
                            f"this server's limit of {max_pixels / 1e6:.0f} MP")
    if kind == "PNG" and len(data) > 24 and data[24] == 16:
        # The contract: the service takes 8-bit pictures, as cameras and browsers send them
        # (the command line converts 16-bit files, which come from scientific cameras).
        raise ApiError(415, "the PNG has 16 bits per channel; send an 8-bit picture")
    if min(width, height) < MIN_SIDE:
        raise ApiError(422, f"the image is {width}×{height} pixels, too small to hold a person "
                            f"(at least {MIN_SIDE}×{MIN_SIDE})")
    try:
        return decode_image(data)
    except ImageError as exc:
        raise ApiError(422, str(exc)) from None
