"""MediaPipe Tasks' landmark dataclasses: plain Python floats, None where a value is unset."""

from __future__ import annotations

import dataclasses
from typing import Optional

from posepipe.framework.formats import landmark_pb2


@dataclasses.dataclass
class Landmark:
    """A 3-D point; for pose world landmarks, metres with the origin between the hips.

    ``visibility``: likelihood that the point is in view and not occluded; ``presence``:
    likelihood that it lies inside the image.
    """

    x: Optional[float] = None
    y: Optional[float] = None
    z: Optional[float] = None
    visibility: Optional[float] = None
    presence: Optional[float] = None

    def to_pb2(self) -> landmark_pb2.Landmark:
        return landmark_pb2.Landmark(**dataclasses.asdict(self))

    @classmethod
    def create_from_pb2(cls, pb2_obj: landmark_pb2.Landmark) -> "Landmark":
        return cls(pb2_obj.x, pb2_obj.y, pb2_obj.z, pb2_obj.visibility, pb2_obj.presence)


@dataclasses.dataclass
class NormalizedLandmark:
    """A point in an image: x / width and y / height (in [0, 1] inside it), z on x's scale,
    smaller nearer the camera; ``visibility`` and ``presence`` as in :class:`Landmark`."""

    x: Optional[float] = None
    y: Optional[float] = None
    z: Optional[float] = None
    visibility: Optional[float] = None
    presence: Optional[float] = None

    def to_pb2(self) -> landmark_pb2.NormalizedLandmark:
        return landmark_pb2.NormalizedLandmark(**dataclasses.asdict(self))

    @classmethod
    def create_from_pb2(cls, pb2_obj: landmark_pb2.NormalizedLandmark) -> "NormalizedLandmark":
        return cls(pb2_obj.x, pb2_obj.y, pb2_obj.z, pb2_obj.visibility, pb2_obj.presence)
