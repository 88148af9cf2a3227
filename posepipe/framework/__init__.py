"""Look-alikes of the MediaPipe framework types that its Python solutions hand out.

Only what code written for ``mediapipe.solutions.pose`` touches: the landmark messages in
``posepipe.framework.formats.landmark_pb2``. Pure Python, no protobuf runtime; the wire
format is protobuf's, so serialized bytes pass to and from MediaPipe unchanged.
"""

from . import formats

__all__ = ["formats"]
