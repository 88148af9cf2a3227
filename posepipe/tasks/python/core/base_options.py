"""MediaPipe's ``BaseOptions``: where a task's model comes from."""

from __future__ import annotations

import dataclasses
import enum
from typing import Optional


@dataclasses.dataclass
class BaseOptions:
    """The model asset of a task, MediaPipe's fields in its order.

    ``model_asset_path``: a pose ``.task`` bundle (a zip of ``pose_detector.tflite`` and
    ``pose_landmarks_detector.tflite``) or, posepipe's extension, a landmark model alone
    (``.tflite`` or a trained ``.onnx``) to run after the default detector.
    ``model_asset_buffer``: the bytes of a ``.task`` bundle; used when there is no path.
    Neither (posepipe's extension): the default models, which posepipe fetches itself.
    ``delegate`` is accepted and has no effect: posepipe runs on the CPU.
    """

    class Delegate(enum.IntEnum):
        CPU = 0
        GPU = 1

    model_asset_path: Optional[str] = None
    model_asset_buffer: Optional[bytes] = None
    delegate: Optional[Delegate] = None
