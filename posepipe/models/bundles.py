"""MediaPipe Tasks' pose model bundles: a ``.task`` file is a zip holding the detector and the
landmark model under fixed names. posepipe runs the two ``.tflite`` members as it runs the
models it fetches; their TFLite metadata (extra buffers and metadata entries) is left unread.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from pathlib import Path

from ..errors import ModelError
from .assets import cache_dir, write_file_atomically

# The member names MediaPipe's pose landmarker graph looks up in a bundle.
DETECTOR_MEMBER = "pose_detector.tflite"
LANDMARK_MEMBER = "pose_landmarks_detector.tflite"


def unpack_task_bundle(bundle: str | Path | bytes) -> tuple[Path, Path]:
    """(detector, landmark model) paths of a pose ``.task`` bundle, given as a file or its bytes.

    The members are extracted once, into ``<cache>/bundles/<SHA-256 of the bundle>/``; each
    file is written whole or not at all, so a folder's files are always complete.
    """
    if isinstance(bundle, (bytes, bytearray, memoryview)):
        data, label = bytes(bundle), "the model asset buffer"
    else:
        label = str(bundle)
        try:
            data = Path(bundle).read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read the model bundle {label}: {exc.strerror or exc}") from None
    folder = cache_dir() / "bundles" / hashlib.sha256(data).hexdigest()[:16]
    targets = (folder / DETECTOR_MEMBER, folder / LANDMARK_MEMBER)
    if all(target.is_file() for target in targets):
        return targets
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            for target in targets:
                if target.name not in names:  # MediaPipe's words
                    raise ModelError(f"No file with name: {target.name}. All files in the model asset bundle "
                                     f"are: {', '.join(names)}.")
            folder.mkdir(parents=True, exist_ok=True)
            for target in targets:
                write_file_atomically(target, archive.read(target.name))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error):
        raise ModelError(f"{label} is not a .task bundle (not a readable zip archive)") from None
    except OSError as exc:
        raise ModelError(f"cannot write the model cache in {folder}: {exc.strerror or exc}") from None
    return targets


