"""Message types of MediaPipe's ``mediapipe/framework/formats`` (landmarks only)."""

from . import landmark_pb2

__all__ = ["landmark_pb2"]
