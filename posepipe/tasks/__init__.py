"""MediaPipe's Tasks API for pose landmarking, on posepipe.

Code written for ``mediapipe.tasks`` runs with posepipe in its place::

    import posepipe as mp
    from posepipe.tasks import python
    from posepipe.tasks.python import vision

    options = vision.PoseLandmarkerOptions(
        base_options=python.BaseOptions(model_asset_path="pose_landmarker_full.task"),
        running_mode=vision.RunningMode.VIDEO)
    with vision.PoseLandmarker.create_from_options(options) as landmarker:
        result = landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), 0)

Mirrored: MediaPipe's module paths (``posepipe.tasks.python.vision``,
``posepipe.tasks.python.components.containers.landmark``, ...), and, as ``mp.tasks`` is
``mediapipe.tasks.python`` in MediaPipe, ``mp.tasks.BaseOptions`` and ``mp.tasks.vision``;
``BaseOptions``, ``PoseLandmarker`` (``create_from_model_path``, ``create_from_options``,
``detect``, ``detect_for_video``, ``detect_async``, ``close``, context manager),
``PoseLandmarkerOptions``, ``PoseLandmarkerResult``, ``PoseLandmarksConnections``,
``RunningMode``, the ``Landmark`` / ``NormalizedLandmark`` dataclasses, with MediaPipe's
names, defaults, and its error types and messages. ``mp.Image`` / ``mp.ImageFormat`` come
from :mod:`posepipe.image`. ``.task`` bundles are read (``posepipe.models.bundles``).

Different: IMAGE mode is posepipe's still pipeline; VIDEO and LIVE_STREAM modes are
posepipe's tracker (MediaPipe's legacy tracking, which also smooths the points the next
crop comes from; MediaPipe's task graph does not). ``detect_async`` works synchronously: the
callback runs, once per frame, before it returns. ``BaseOptions()`` without a model means
posepipe's default models, and a lone landmark ``.tflite`` (or trained ``.onnx``) may stand
in for a bundle; ``delegate`` has no effect; ``min_tracking_confidence`` is only checked;
there is no ``image_processing_options``. Only pose: no other task is here.
"""

from . import python
from .python import BaseOptions, components, vision

__all__ = ["BaseOptions", "components", "python", "vision"]
