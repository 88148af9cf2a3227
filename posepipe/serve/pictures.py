"""Pictures in answers: PNG bytes, and PNGs inlined in JSON as data URLs."""

from __future__ import annotations

import base64

import cv2
import numpy as np


def png_bytes(rgb_or_gray: np.ndarray) -> bytes:
    picture = rgb_or_gray if rgb_or_gray.ndim == 2 else cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", picture)
    if not ok:  # OpenCV encodes any uint8 picture it is given; this would be a bug
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def png_data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
