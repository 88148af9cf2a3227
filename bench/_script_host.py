"""Runs a third-party MediaPipe script unattended: ``python _script_host.py SCRIPT [ARGS...]``.

The script runs as ``__main__`` in the current folder, unmodified. Only OpenCV's window and
camera functions are replaced, since there is neither a screen nor a camera here:

* ``cv2.VideoCapture(<int>)`` plays the video named by ``SCRIPT_HOST_CAMERA``. The fake camera
  reports itself closed once its last frame has been read, as an unplugged camera would, so
  loops of the form ``while cap.isOpened(): ok, frame = cap.read()`` end cleanly.
* ``cv2.imshow`` saves what would be shown under ``SCRIPT_HOST_OUT``: ``<window>/<n>.png`` for
  8-bit pictures, ``<window>/<n>.npy`` for anything else (a float mask, say).
* ``cv2.waitKey`` returns "no key" (-1), except that once the fake camera has run out it
  returns ``SCRIPT_HOST_QUIT_KEY``: the key the script waits for to stop.
* The other window functions do nothing.
"""

import os
import runpy
import sys
from pathlib import Path

import cv2
import numpy as np

OUT = Path(os.environ["SCRIPT_HOST_OUT"])
CAMERA = os.environ.get("SCRIPT_HOST_CAMERA")
QUIT_KEY = int(os.environ.get("SCRIPT_HOST_QUIT_KEY", "-1"))
FileCapture = cv2.VideoCapture
shown: dict[str, int] = {}
cameras: list["FakeCamera"] = []


class FakeCamera:
    def __init__(self, index: int, *args):
        if CAMERA is None:
            raise RuntimeError(f"the script opened camera {index}, but SCRIPT_HOST_CAMERA names no video")
        self._capture = FileCapture(CAMERA)
        self._next = self._capture.read()  # one frame ahead, to know when the last one has gone
        cameras.append(self)

    def isOpened(self) -> bool:
        return bool(self._next[0])

    def read(self, image=None):
        current = self._next
        if current[0]:
            self._next = self._capture.read()
        return current

    def get(self, prop: int) -> float:
        return self._capture.get(prop)

    def set(self, prop: int, value: float) -> bool:
        return False  # a camera setting (resolution, fps) the file cannot change

    def release(self) -> None:
        self._capture.release()
        self._next = (False, None)


def video_capture(source, *args):
    return FakeCamera(source, *args) if isinstance(source, int) else FileCapture(source, *args)


def imshow(window: str, image) -> None:
    n = shown.get(window, 0)
    shown[window] = n + 1
    folder = OUT / window.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    image = np.asarray(image)
    if image.dtype == np.uint8:
        cv2.imwrite(str(folder / f"{n:05d}.png"), image)
    else:
        np.save(folder / f"{n:05d}.npy", image)


def wait_key(delay: int = 0) -> int:
    return QUIT_KEY if cameras and not any(c.isOpened() for c in cameras) else -1


def nothing(*args, **kwargs):
    return None


cv2.VideoCapture = video_capture
cv2.imshow = imshow
cv2.waitKey = wait_key
cv2.waitKeyEx = wait_key
for name in ("namedWindow", "destroyWindow", "destroyAllWindows", "moveWindow", "resizeWindow",
             "setWindowProperty", "setWindowTitle"):
    setattr(cv2, name, nothing)

if __name__ == "__main__":
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")
