"""MediaPipe's running modes of a vision task."""

import enum


class VisionTaskRunningMode(enum.Enum):
    """IMAGE: unrelated single images (``detect``). VIDEO: the decoded frames of a video, in
    order (``detect_for_video``). LIVE_STREAM: frames as they arrive, results handed to a
    callback (``detect_async``)."""

    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    LIVE_STREAM = "LIVE_STREAM"
