"""posepipe: MediaPipe Pose's 33-landmark pipeline in Python, on the real BlazePose weights.

Layers, each importing only those below it:

* ``errors``, ``topology``, ``results``; ``models/`` (assets, graph import, runtimes);
* the still pipeline: ``roi``, ``detector``, ``landmarks``, ``pipeline``, ``drawing``, ``io``, ``trace``,
  and ``image`` (MediaPipe's ``mp.Image`` container);
* ``video/``: sources, tracking, smoothing, the run loop, exports;
* ``analysis/`` (angles, labels, evaluation), then ``training/``;
* the front doors: the ``posepipe`` command (``cli``), large collections (``batch``), the HTTP service
  (``serve``) and MediaPipe's legacy API
  (``solutions``, on the message types of ``framework``): ``import posepipe as mp`` then
  ``mp.solutions.pose.Pose``, and MediaPipe's Tasks API (``tasks``):
  ``mp.tasks.vision.PoseLandmarker`` on ``mp.Image``.

The public names and those subpackages are imported on first use, so ``import posepipe``
stays cheap.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "PoseLandmarker": "pipeline", "PoseLandmarkerOptions": "pipeline",
    "Poses": "results", "Detections": "results", "RegionOfInterest": "roi", "PoseAnnotator": "drawing",
    "LANDMARK_NAMES": "topology", "POSE_CONNECTIONS": "topology",
    "PosepipeError": "errors", "ModelError": "errors", "ImageError": "errors",
    "read_image": "io", "Image": "image", "ImageFormat": "image",
    "PoseTracker": "video.tracking", "open_source": "video.sources", "Frame": "video.sources",
    "VideoOutputs": "video.outputs", "run_video": "video.runner", "track_video": "video.runner",
}

# Subpackages reachable as attributes without an import of their own, as in MediaPipe.
_SUBPACKAGES = ("solutions", "framework", "tasks")

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)  # the import sets the attribute too
    if name not in _PUBLIC:
        raise AttributeError(f"module 'posepipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC) | set(_SUBPACKAGES))
