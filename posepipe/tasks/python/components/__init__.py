"""``mediapipe.tasks.python.components``: the result containers tasks hand out."""

from . import containers

__all__ = ["containers"]
