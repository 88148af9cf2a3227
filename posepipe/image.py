"""MediaPipe's image container, ``mp.Image`` and ``mp.ImageFormat``, in numpy.

An :class:`Image` holds a copy of the pixels it was given, frozen: :meth:`Image.numpy_view`
hands out a read-only view, as MediaPipe's does. The formats are MediaPipe's enum (same
names, same numbers); each takes one pixel type and channel count, and a mismatch is refused
with MediaPipe's own message where it has one.
"""

from __future__ import annotations

import enum
from pathlib import Path

import numpy as np

__all__ = ["Image", "ImageFormat"]


class ImageFormat(enum.IntEnum):
    """The pixel layouts of MediaPipe's ``ImageFormat`` (the numbers of its ``image_format.proto``)."""

    SRGB = 1  # uint8 red, green, blue
    SRGBA = 2  # uint8 red, green, blue, alpha
    SBGRA = 11  # uint8 blue, green, red, alpha (named by MediaPipe, but it builds no Image from it)
    GRAY8 = 3
    GRAY16 = 4
    SRGB48 = 7  # uint16 red, green, blue
    SRGBA64 = 8  # uint16 red, green, blue, alpha
    VEC32F1 = 9  # one float32 per pixel: what segmentation masks come as
    VEC32F2 = 12


# Per format: the pixel type and the number of channels.
_LAYOUTS = {
    ImageFormat.SRGB: (np.uint8, 3), ImageFormat.SRGBA: (np.uint8, 4), ImageFormat.SBGRA: (np.uint8, 4),
    ImageFormat.GRAY8: (np.uint8, 1), ImageFormat.GRAY16: (np.uint16, 1), ImageFormat.SRGB48: (np.uint16, 3),
    ImageFormat.SRGBA64: (np.uint16, 4), ImageFormat.VEC32F1: (np.float32, 1), ImageFormat.VEC32F2: (np.float32, 2),
}
# What MediaPipe builds from each pixel type, and its words when the format is not one of them.
_FORMATS_OF_DTYPE = {
    np.dtype(np.uint8): ((ImageFormat.GRAY8, ImageFormat.SRGB, ImageFormat.SRGBA),
                         "uint8 image data should be one of the GRAY8, SRGB, and SRGBA MediaPipe image formats."),
    np.dtype(np.uint16): ((ImageFormat.GRAY16, ImageFormat.SRGB48, ImageFormat.SRGBA64),
                          "uint16 image data should be one of the GRAY16, SRGB48, and SRGBA64 MediaPipe "
                          "image formats."),
    np.dtype(np.float32): ((ImageFormat.VEC32F1, ImageFormat.VEC32F2),
                           "float image data should be either VEC32F1 or VEC32F2 MediaPipe image formats."),
}


class Image:
    """An image or video frame in one of the :class:`ImageFormat` layouts.

    >>> frame = Image(image_format=ImageFormat.SRGB, data=rgb_array)      # doctest: +SKIP
    >>> frame.numpy_view()[0, 0]                                           # read-only

    ``data`` is (height, width, channels), or (height, width) for one-channel formats, of the
    format's pixel type (uint8, uint16 or float32); it is copied. Raises RuntimeError with
    MediaPipe's message when the pixel type does not suit the format, ValueError when the
    shape does not.
    """

    __slots__ = ("_format", "_pixels")

    def __init__(self, image_format: ImageFormat, data: np.ndarray):
        try:
            image_format = ImageFormat(image_format)
        except ValueError:
            raise ValueError(f"{image_format!r} is not an ImageFormat") from None
        if not isinstance(data, np.ndarray):
            raise TypeError(f"Image data must be a numpy array, not {type(data).__name__}.")
        if data.dtype not in _FORMATS_OF_DTYPE:
            raise ValueError(f"Image data must be uint8, uint16 or float32 pixels, not {data.dtype}.")
        formats, message = _FORMATS_OF_DTYPE[data.dtype]
        if image_format not in formats:
            raise RuntimeError(message)
        channels = _LAYOUTS[image_format][1]
        if data.ndim == 3 and data.shape[2] == channels == 1:
            data = data[:, :, 0]
        expected = (channels == 1 and data.ndim == 2) or (data.ndim == 3 and data.shape[2] == channels)
        if not expected:
            wanted = "(height, width)" if channels == 1 else f"(height, width, {channels})"
            raise ValueError(f"{image_format.name} image data must have shape {wanted}, got {data.shape}.")
        if data.shape[0] < 1 or data.shape[1] < 1:
            raise ValueError(f"Image data is empty (shape {data.shape}).")
        pixels = np.array(data, order="C", copy=True)
        pixels.flags.writeable = False
        self._format, self._pixels = image_format, pixels

    @classmethod
    def create_from_file(cls, file_name: str | Path) -> "Image":
        """The image in a file, as stored: SRGB, SRGBA when it has an alpha channel, GRAY8 for
        grayscale; 16-bit files are brought to 8 bits and EXIF orientation is not applied, as
        MediaPipe's decoder does. Raises RuntimeError when the file cannot be decoded."""
        import cv2

        try:
            encoded = np.fromfile(file_name, dtype=np.uint8)  # unlike cv2.imread, any path encoding
        except OSError:
            raise RuntimeError(f"Image decoding failed (can't fopen): {file_name}") from None
        pixels = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if encoded.size else None
        if pixels is None or pixels.dtype not in (np.uint8, np.uint16):
            raise RuntimeError(f"Image decoding failed (unknown image type): {file_name}")
        if pixels.dtype == np.uint16:
            pixels = (pixels >> 8).astype(np.uint8)  # the top byte, as MediaPipe's decoder keeps
        if pixels.ndim == 2:
            return cls(ImageFormat.GRAY8, pixels)
        if pixels.shape[2] == 4:
            return cls(ImageFormat.SRGBA, cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA))
        return cls(ImageFormat.SRGB, cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))

    def numpy_view(self) -> np.ndarray:
        """The pixels as a read-only array, (height, width) for one channel; copy it to change it."""
        return self._pixels.view()  # a view of a read-only array cannot be made writable

    @property
    def width(self) -> int:
        return self._pixels.shape[1]

    @property
    def height(self) -> int:
        return self._pixels.shape[0]

    @property
    def channels(self) -> int:
        return _LAYOUTS[self._format][1]

    @property
    def image_format(self) -> ImageFormat:
        return self._format

    def __repr__(self) -> str:
        return f"<Image {self._format.name} {self.width}x{self.height}>"
