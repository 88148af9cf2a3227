"""``mediapipe.tasks.python.core``: the options every task takes."""

from . import base_options

__all__ = ["base_options"]
