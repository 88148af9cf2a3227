"""``mediapipe.tasks.python.vision.core``: what the vision tasks share."""

from . import vision_task_running_mode

__all__ = ["vision_task_running_mode"]
