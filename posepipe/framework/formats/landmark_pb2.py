"""MediaPipe's landmark messages (``landmark.proto``, proto2) in pure Python.

``NormalizedLandmark`` / ``Landmark`` hold ``x, y, z, visibility, presence`` as 32-bit
floats that are either set or unset (``HasField``); an unset field reads 0.0. The list
messages hold them in a repeated field ``landmark``. The behaviour follows protobuf's Python
messages where code meets it: keyword construction, float32 storage, ``HasField`` /
``ClearField`` / ``CopyFrom`` / ``MergeFrom``, equality, text format from ``str()``, the wire
format (``SerializeToString`` / ``FromString``), and a repeated field that copies what is
appended and refuses other message types.
"""

from __future__ import annotations

import math
import numbers
import struct
from typing import Any, Iterable, Iterator, NamedTuple

__all__ = ["Landmark", "NormalizedLandmark", "LandmarkList", "NormalizedLandmarkList",
           "LandmarkListCollection", "NormalizedLandmarkListCollection"]


class FieldDescriptor(NamedTuple):
    """The little of protobuf's field descriptor that ``ListFields`` callers read."""

    name: str
    number: int


def _float32(value: Any) -> float:
    """A Python float holding ``value`` rounded to float32, as protobuf stores ``float`` fields."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"must be real number, not {type(value).__name__}")
    value = float(value)
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:  # beyond float32's range: protobuf stores infinity
        return math.copysign(math.inf, value)


def _format_float(value: float) -> str:
    """Text-format a float32 as protobuf does: 6 significant digits, 9 when 6 do not round-trip."""
    text = f"{value:.6g}"
    if math.isfinite(value) and _float32(float(text)) != value:
        text = f"{value:.9g}"
    return text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


class DecodeError(ValueError):
    """Bytes that are not a valid encoding of the message."""


class _FloatField:
    """An optional ``float`` field: unset reads 0.0, set values are float32."""

    def __init__(self, number: int):
        self.number = number

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, message, owner=None):
        if message is None:
            return self
        return message._values.get(self.name, 0.0)

    def __set__(self, message, value):
        message._values[self.name] = _float32(value)


class _RepeatedField:
    """A repeated message field: read-only attribute holding a :class:`RepeatedCompositeContainer`."""

    def __init__(self, number: int, element: str):
        self.number, self.element_name = number, element

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, message, owner=None):
        if message is None:
            return self
        return message._values[self.name]

    def __set__(self, message, value):
        raise AttributeError(f'Assignment not allowed to repeated field "{self.name}" in protocol message object.')


class RepeatedCompositeContainer:
    """A list of messages of one type; what goes in is copied, as protobuf does."""

    __slots__ = ("_type", "_items")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, message_type: type):
        self._type = message_type
        self._items: list = []

    def _copy_in(self, message) -> "_Message":
        if not isinstance(message, self._type):
            raise TypeError(f"Parameter to MergeFrom() must be instance of same class: expected {self._type.__name__} "
                            f"got {type(message).__name__}.")
        copy = self._type()
        copy.MergeFrom(message)
        return copy

    def add(self, **fields) -> "_Message":
        """Append a new element built from ``fields`` and return it (to fill in further)."""
        element = self._type(**fields)
        self._items.append(element)
        return element

    def _extend_float32_rows(self, names: tuple[str, ...], rows: list[list[float]]) -> None:
        """Append one element per row, ``names`` its fields. The values must already be float32
        (as ``ndarray.tolist()`` of a float32 array gives them): this skips ``add``'s checks and
        rounding, which cost more than the pipeline's postprocessing for 33 landmarks."""
        new = object.__new__
        for row in rows:
            element = new(self._type)
            element._values = dict(zip(names, row))
            self._items.append(element)

    def append(self, message) -> None:
        self._items.append(self._copy_in(message))

    def extend(self, messages: Iterable) -> None:
        self._items.extend([self._copy_in(m) for m in messages])

    def insert(self, index: int, message) -> None:
        self._items.insert(index, self._copy_in(message))

    def MergeFrom(self, other: Iterable) -> None:  # noqa: N802 (protobuf's name)
        self.extend(other)

    def pop(self, index: int = -1):
        return self._items.pop(index)

    def remove(self, message) -> None:
        self._items.remove(message)

    def clear(self) -> None:
        self._items.clear()

    def sort(self, *, key=None, reverse: bool = False) -> None:
        self._items.sort(key=key, reverse=reverse)

    def reverse(self) -> None:
        self._items.reverse()

    def __getitem__(self, index):
        return self._items[index]  # an int (an IntEnum member too) or a slice, which gives a list

    def __setitem__(self, index, value):
        raise TypeError("does not support assignment")

    def __delitem__(self, index) -> None:
        del self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator:
        return iter(self._items)

    def __eq__(self, other) -> bool:
        if isinstance(other, RepeatedCompositeContainer):
            return self._items == other._items
        if isinstance(other, list):
            return self._items == other
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._items)


class _Message:
    """What the landmark messages share: fields declared as class attributes, in number order."""

    __slots__ = ("_values",)
    __hash__ = None  # type: ignore[assignment]  # protobuf messages are mutable, hence unhashable
    _SCALARS: tuple[str, ...] = ()
    _REPEATED: tuple[str, ...] = ()

    def __init__(self, **fields):
        self._values: dict[str, Any] = {}
        for name in self._REPEATED:
            self._values[name] = RepeatedCompositeContainer(self._element_type(name))
        for name, value in fields.items():
            if name in self._SCALARS:
                if value is not None:  # protobuf leaves a field given as None unset
                    setattr(self, name, value)
            elif name in self._REPEATED:
                container = self._values[name]
                for item in value or ():
                    if isinstance(item, dict):
                        container.add(**item)
                    else:
                        container.append(item)
            else:
                raise ValueError(f'Protocol message {type(self).__name__} has no "{name}" field.')

    @classmethod
    def _element_type(cls, name: str) -> type:
        return globals()[getattr(cls, name).element_name]

    @classmethod
    def _fields(cls) -> list:
        return sorted((getattr(cls, n) for n in cls._SCALARS + cls._REPEATED), key=lambda f: f.number)

    def _check_field(self, name: str) -> None:
        if name not in self._SCALARS and name not in self._REPEATED:
            raise ValueError(f'Protocol message {type(self).__name__} has no "{name}" field.')

    def HasField(self, name: str) -> bool:  # noqa: N802
        self._check_field(name)
        if name in self._REPEATED:
            raise ValueError(f'Protocol message {type(self).__name__} has no singular "{name}" field.')
        return name in self._values

    def ClearField(self, name: str) -> None:  # noqa: N802
        self._check_field(name)
        if name in self._REPEATED:
            self._values[name].clear()
        else:
            self._values.pop(name, None)

    def Clear(self) -> None:  # noqa: N802
        for name in self._SCALARS + self._REPEATED:
            self.ClearField(name)

    def ListFields(self) -> list[tuple[FieldDescriptor, Any]]:  # noqa: N802
        """The set scalar fields and non-empty repeated ones, in field-number order."""
        out = []
        for field in self._fields():
            value = self._values.get(field.name)
            if field.name in self._REPEATED and not len(value):
                continue
            if value is not None:
                out.append((FieldDescriptor(field.name, field.number), value))
        return out

    def MergeFrom(self, other: "_Message") -> None:  # noqa: N802
        """Set fields overwrite, repeated fields append (copies), as protobuf merges."""
        if not isinstance(other, type(self)):
            raise TypeError(f"Parameter to MergeFrom() must be instance of same class: expected "
                            f"{type(self).__name__} got {type(other).__name__}.")
        for name in self._SCALARS:
            if name in other._values:
                self._values[name] = other._values[name]
        for name in self._REPEATED:
            self._values[name].extend(other._values[name])

    def CopyFrom(self, other: "_Message") -> None:  # noqa: N802
        if other is self:
            return
        if not isinstance(other, type(self)):
            raise TypeError(f"Parameter to CopyFrom() must be instance of same class: expected "
                            f"{type(self).__name__} got {type(other).__name__}.")
        self.Clear()
        self.MergeFrom(other)

    def IsInitialized(self) -> bool:  # noqa: N802 (proto2 optional fields only: always)
        return True

    def __eq__(self, other) -> bool:
        if not isinstance(other, _Message):
            return NotImplemented
        return type(self) is type(other) and self.ListFields() == other.ListFields()

    def __deepcopy__(self, memo=None) -> "_Message":
        copy = type(self)()
        copy.MergeFrom(self)
        return copy

    __copy__ = __deepcopy__

    def __reduce__(self):
        return type(self).FromString, (self.SerializeToString(),)

    # Text format, as ``str()`` of a protobuf message gives it.
    def _text(self, indent: str) -> list[str]:
        lines = []
        for field, value in self.ListFields():
            if field.name in self._REPEATED:
                for item in value:
                    lines.append(f"{indent}{field.name} {{")
                    lines.extend(item._text(indent + "  "))
                    lines.append(f"{indent}}}")
            else:
                lines.append(f"{indent}{field.name}: {_format_float(value)}")
        return lines

    def __str__(self) -> str:
        return "".join(line + "\n" for line in self._text(""))

    __repr__ = __str__

    # The wire format: float fields as fixed32 (wire type 5), repeated messages length-delimited (2).
    def SerializeToString(self, **_options) -> bytes:  # noqa: N802
        out = bytearray()
        for field, value in self.ListFields():
            if field.name in self._REPEATED:
                for item in value:
                    body = item.SerializeToString()
                    out += _varint(field.number << 3 | 2) + _varint(len(body)) + body
            else:
                out += _varint(field.number << 3 | 5) + struct.pack("<f", value)
        return bytes(out)

    def ByteSize(self) -> int:  # noqa: N802
        return len(self.SerializeToString())

    def ParseFromString(self, data: bytes) -> int:  # noqa: N802
        self.Clear()
        return self.MergeFromString(data)

    def MergeFromString(self, data: bytes) -> int:  # noqa: N802
        data = bytes(data)
        by_number = {f.number: f for f in self._fields()}
        pos = 0
        while pos < len(data):
            key, pos = _read_varint(data, pos)
            number, wire_type = key >> 3, key & 7
            field = by_number.get(number)
            if wire_type == 0:
                _, pos = _read_varint(data, pos)
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                if pos + 4 > len(data):
                    raise DecodeError("truncated fixed32")
                if field is not None and field.name in self._SCALARS:
                    self._values[field.name] = struct.unpack("<f", data[pos:pos + 4])[0]
                pos += 4
            elif wire_type == 2:
                length, pos = _read_varint(data, pos)
                if pos + length > len(data):
                    raise DecodeError("truncated length-delimited field")
                if field is not None and field.name in self._REPEATED:
                    self._values[field.name].add().MergeFromString(data[pos:pos + length])
                pos += length
            else:  # unknown fields are skipped; groups (3, 4) do not occur in these messages
                raise DecodeError(f"unsupported wire type {wire_type}")
            if pos > len(data):
                raise DecodeError("truncated message")
        return len(data)

    @classmethod
    def FromString(cls, data: bytes) -> "_Message":  # noqa: N802
        message = cls()
        message.MergeFromString(data)
        return message


class _LandmarkFields(_Message):
    __slots__ = ()
    _SCALARS = ("x", "y", "z", "visibility", "presence")
    x = _FloatField(1)
    y = _FloatField(2)
    z = _FloatField(3)
    visibility = _FloatField(4)  # likelihood that the landmark is visible (in frame and not occluded)
    presence = _FloatField(5)  # likelihood that the landmark is in frame


class Landmark(_LandmarkFields):
    """A 3-D point; for pose world landmarks, metres with the origin between the hips."""

    __slots__ = ()


class NormalizedLandmark(_LandmarkFields):
    """A point in an image: x / width and y / height in [0, 1] inside it, z on x's scale."""

    __slots__ = ()


class _ListOf(_Message):
    """A message whose one field, number 1, repeats one message type: the class statement names
    them, ``class LandmarkList(_ListOf, field="landmark", element="Landmark")``."""

    __slots__ = ()

    def __init_subclass__(cls, *, field: str, element: str, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._REPEATED = (field,)
        descriptor = _RepeatedField(1, element)
        descriptor.__set_name__(cls, field)
        setattr(cls, field, descriptor)


class LandmarkList(_ListOf, field="landmark", element="Landmark"):
    __slots__ = ()


class NormalizedLandmarkList(_ListOf, field="landmark", element="NormalizedLandmark"):
    __slots__ = ()


class LandmarkListCollection(_ListOf, field="landmark_list", element="LandmarkList"):
    __slots__ = ()


class NormalizedLandmarkListCollection(_ListOf, field="landmark_list", element="NormalizedLandmarkList"):
    __slots__ = ()
