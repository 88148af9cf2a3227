"""posepipe.framework.formats.landmark_pb2 behaves as MediaPipe's protobuf messages where code meets them."""

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from posepipe.framework.formats import landmark_pb2
from posepipe.framework.formats.landmark_pb2 import (Landmark, LandmarkList, NormalizedLandmark,
                                                     NormalizedLandmarkList, NormalizedLandmarkListCollection)
from posepipe.solutions.pose import PoseLandmark

MESSAGE = json.loads((Path(__file__).parent / "data" / "drawing" / "cases.json").read_text())["message"]


def test_fields_are_float32_and_unset_reads_zero():
    p = NormalizedLandmark(x=0.1, y=np.float64(0.2), visibility=1)
    assert p.x == float(np.float32(0.1)) != 0.1 and p.y == float(np.float32(0.2))
    assert p.visibility == 1.0 and isinstance(p.visibility, float)
    assert p.z == 0.0 and p.presence == 0.0
    assert [p.HasField(n) for n in ("x", "y", "z", "visibility", "presence")] == [True, True, False, True, False]
    p.z = 0.0  # set to zero is still set
    assert p.HasField("z")
    p.ClearField("visibility")
    assert not p.HasField("visibility") and p.visibility == 0.0
    assert NormalizedLandmark(x=None).HasField("x") is False
    assert Landmark(x=1e300).x == float("inf")
    with pytest.raises(TypeError, match="must be real number, not str"):
        NormalizedLandmark(x="0.5")
    with pytest.raises(TypeError):
        p.y = [1.0]
    with pytest.raises(ValueError, match='Protocol message NormalizedLandmark has no "q" field.'):
        NormalizedLandmark(q=1.0)
    with pytest.raises(ValueError):
        p.HasField("q")
    with pytest.raises(AttributeError):
        p.q = 1.0  # no new attributes on a message


def test_repeated_field_as_protobuf():
    points = NormalizedLandmarkList()
    assert len(points.landmark) == 0 and list(points.landmark) == []
    first = points.landmark.add(x=0.5)
    first.y = 0.25  # add() returns the element itself
    loose = NormalizedLandmark(x=0.75, visibility=0.1)
    points.landmark.append(loose)
    loose.x = 0.0  # append copied it
    points.landmark.extend([NormalizedLandmark(x=float(i) / 40) for i in range(31)])
    assert len(points.landmark) == 33 and points.landmark[1].x == 0.75 and points.landmark[0].y == 0.25
    assert points.landmark[PoseLandmark.LEFT_EYE_INNER].x == 0.75  # IntEnum indices
    assert points.landmark[-1].x == pytest.approx(30 / 40) and isinstance(points.landmark[0:2], list)
    assert [p.x for p in points.landmark][:2] == [0.5, 0.75]
    with pytest.raises(TypeError):
        points.landmark.append(Landmark(x=1.0))  # another message type
    with pytest.raises(IndexError):
        points.landmark[33]
    with pytest.raises(AttributeError):
        points.landmark = []
    del points.landmark[2:]
    assert len(points.landmark) == 2
    built = NormalizedLandmarkList(landmark=[NormalizedLandmark(x=0.5, y=0.25), {"x": 0.75, "visibility": 0.1}])
    assert built == points and built.landmark == points.landmark
    built.landmark[1].visibility = 0.2
    assert built != points


def test_copy_merge_equality_and_hashing():
    a = LandmarkList(landmark=[Landmark(x=1.0, y=2.0, z=3.0, visibility=0.9)])
    b = LandmarkList()
    b.CopyFrom(a)
    assert a == b and a is not b and a.landmark[0] is not b.landmark[0]
    b.MergeFrom(a)
    assert len(b.landmark) == 2
    assert copy.deepcopy(a) == a and pickle.loads(pickle.dumps(a)) == a
    assert Landmark(x=0.0) != Landmark()  # set differs from unset, as in protobuf
    assert Landmark(x=1.0) != NormalizedLandmark(x=1.0)
    with pytest.raises(TypeError):
        hash(Landmark())
    with pytest.raises(TypeError):
        a.CopyFrom(NormalizedLandmarkList())
    assert [(f.name, v) for f, v in Landmark(z=2.0, x=1.0).ListFields()] == [("x", 1.0), ("z", 2.0)]
    collection = NormalizedLandmarkListCollection()
    collection.landmark_list.add().landmark.add(x=0.5)
    assert collection.landmark_list[0].landmark[0].x == 0.5


def test_wire_format_and_text_format_are_protobufs():
    """Bytes and str() of one message as MediaPipe 0.10.21's protobuf wrote them."""
    ours = NormalizedLandmarkList()
    for p in MESSAGE["landmarks"]:
        ours.landmark.add(**p)
    assert ours.SerializeToString().hex() == MESSAGE["serialized_hex"]
    assert str(ours) == MESSAGE["text"]
    back = NormalizedLandmarkList.FromString(bytes.fromhex(MESSAGE["serialized_hex"]))
    assert back == ours and not back.landmark[0].HasField("visibility")
    assert str(NormalizedLandmark(x=0.0, y=1e-9, z=-3.5, visibility=1e20)) == "x: 0\ny: 1e-09\nz: -3.5\nvisibility: 1e+20\n"
    assert str(Landmark(x=123456.789)) == "x: 123456.789\n"  # 6 digits do not round-trip: 9
    assert str(NormalizedLandmarkList()) == ""


def test_module_names():
    assert set(landmark_pb2.__all__) >= {"Landmark", "NormalizedLandmark", "LandmarkList", "NormalizedLandmarkList"}
    import posepipe

    assert posepipe.framework.formats.landmark_pb2 is landmark_pb2
