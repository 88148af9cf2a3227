"""``mp.Image`` / ``mp.ImageFormat`` (posepipe.image): MediaPipe's image container in numpy."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import posepipe as mp
from tests.conftest import SHARED, needs_shared

# MediaPipe's ImageFormat members as its Python binding lists them, with image_format.proto's numbers.
MEDIAPIPE_FORMATS = {"SRGB": 1, "SRGBA": 2, "SBGRA": 11, "GRAY8": 3, "GRAY16": 4, "SRGB48": 7, "SRGBA64": 8,
                     "VEC32F1": 9, "VEC32F2": 12}
# Formats an Image can be built from, with their pixel type and channel count.
BUILDABLE = [("SRGB", np.uint8, 3), ("SRGBA", np.uint8, 4), ("GRAY8", np.uint8, 1), ("GRAY16", np.uint16, 1),
             ("SRGB48", np.uint16, 3), ("SRGBA64", np.uint16, 4), ("VEC32F1", np.float32, 1),
             ("VEC32F2", np.float32, 2)]


def random_pixels(dtype, channels: int, height: int = 5, width: int = 7) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    rng = np.random.default_rng(channels)
    if dtype == np.float32:
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def test_formats_are_mediapipes():
    assert {f.name: int(f) for f in mp.ImageFormat} == MEDIAPIPE_FORMATS
    assert mp.Image is __import__("posepipe.image", fromlist=["Image"]).Image


def test_image_resolves_without_cv2_or_the_front_doors():
    code = ("import sys, posepipe as mp; mp.Image; mp.ImageFormat.SRGB; "
            "assert 'cv2' not in sys.modules, 'cv2'; "
            "assert not any(m.startswith(('posepipe.tasks', 'posepipe.solutions')) for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.parametrize("name,dtype,channels", BUILDABLE, ids=[b[0] for b in BUILDABLE])
def test_each_format_holds_a_frozen_copy(name, dtype, channels):
    data = random_pixels(dtype, channels)
    image = mp.Image(image_format=mp.ImageFormat[name], data=data)
    assert (image.width, image.height, image.channels) == (7, 5, channels)
    assert image.image_format is mp.ImageFormat[name]
    view = image.numpy_view()
    assert view.dtype == dtype and view.shape == data.shape and np.array_equal(view, data)
    data[...] = 0  # the image copied its pixels
    assert np.array_equal(image.numpy_view(), view) and view.any()
    with pytest.raises(ValueError):
        view[0, 0] = 1
    with pytest.raises(ValueError):
        view.flags.writeable = True


def test_one_channel_data_may_keep_its_channel_axis():
    data = random_pixels(np.uint8, 1)
    image = mp.Image(mp.ImageFormat.GRAY8, data[:, :, None])
    assert image.numpy_view().shape == (5, 7) and np.array_equal(image.numpy_view(), data)


def test_non_contiguous_data_is_accepted():
    bgr = random_pixels(np.uint8, 3)
    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=bgr[:, :, ::-1])
    assert np.array_equal(image.numpy_view(), bgr[:, :, ::-1]) and image.numpy_view().flags.c_contiguous


def test_pixel_type_must_suit_the_format():
    with pytest.raises(RuntimeError, match=r"^uint8 image data should be one of the GRAY8, SRGB, and SRGBA "):
        mp.Image(mp.ImageFormat.VEC32F1, np.zeros((4, 4), np.uint8))
    with pytest.raises(RuntimeError, match="^uint8 image data should be"):
        mp.Image(mp.ImageFormat.SBGRA, np.zeros((4, 4, 4), np.uint8))  # named, but MediaPipe builds none
    with pytest.raises(RuntimeError, match=r"^float image data should be either VEC32F1 or VEC32F2 "):
        mp.Image(mp.ImageFormat.SRGB, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(RuntimeError, match="^uint16 image data should be one of the GRAY16, SRGB48, and SRGBA64"):
        mp.Image(mp.ImageFormat.SRGB, np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(ValueError, match="must be uint8, uint16 or float32 pixels, not float64"):
        mp.Image(mp.ImageFormat.VEC32F1, np.zeros((4, 4)))


def test_shape_must_suit_the_format():
    with pytest.raises(ValueError, match=r"SRGBA image data must have shape \(height, width, 4\), got \(4, 4, 3\)"):
        mp.Image(mp.ImageFormat.SRGBA, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"SRGB image data must have shape \(height, width, 3\), got \(4, 4\)"):
        mp.Image(mp.ImageFormat.SRGB, np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"GRAY8 image data must have shape \(height, width\)"):
        mp.Image(mp.ImageFormat.GRAY8, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        mp.Image(mp.ImageFormat.SRGB, np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(TypeError, match="must be a numpy array, not list"):
        mp.Image(mp.ImageFormat.SRGB, [[[0, 0, 0]]])
    with pytest.raises(ValueError, match="99 is not an ImageFormat"):
        mp.Image(99, np.zeros((4, 4, 3), np.uint8))


def assert_file_reads_as_opencv_rgb(path: Path) -> None:
    image = mp.Image.create_from_file(str(path))
    expected = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert image.image_format is mp.ImageFormat.SRGB and (image.height, image.width) == expected.shape[:2]
    assert np.array_equal(image.numpy_view(), expected)
    assert not image.numpy_view().flags.writeable


def test_create_from_file_reads_rgb(grace_path):
    assert_file_reads_as_opencv_rgb(grace_path)


@needs_shared
def test_create_from_file_reads_a_shared_photo_as_rgb():
    assert_file_reads_as_opencv_rgb(SHARED / "data" / "images" / "coco_000000000785.jpg")


def test_create_from_file_keeps_alpha_and_gray_and_takes_the_top_byte_of_16_bits(tmp_path):
    rgba = random_pixels(np.uint8, 4)
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    image = mp.Image.create_from_file(tmp_path / "rgba.png")
    assert image.image_format is mp.ImageFormat.SRGBA and np.array_equal(image.numpy_view(), rgba)

    gray = random_pixels(np.uint8, 1)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    image = mp.Image.create_from_file(tmp_path / "gray.png")
    assert image.image_format is mp.ImageFormat.GRAY8 and np.array_equal(image.numpy_view(), gray)

    deep = random_pixels(np.uint16, 3)
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    image = mp.Image.create_from_file(tmp_path / "deep.png")
    assert image.image_format is mp.ImageFormat.SRGB and np.array_equal(image.numpy_view(), deep >> 8)


def test_create_from_file_refuses_what_it_cannot_decode(tmp_path):
    missing = tmp_path / "missing.jpg"
    with pytest.raises(RuntimeError, match=r"^Image decoding failed \(can't fopen\): .*missing\.jpg$"):
        mp.Image.create_from_file(str(missing))
    garbage = tmp_path / "notes.jpg"
    garbage.write_text("not an image")
    with pytest.raises(RuntimeError, match=r"^Image decoding failed \(unknown image type\): .*notes\.jpg$"):
        mp.Image.create_from_file(str(garbage))
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(RuntimeError, match="unknown image type"):
        mp.Image.create_from_file(tmp_path / "empty.png")
