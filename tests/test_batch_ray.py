"""The Ray engine on a real two-node Ray cluster on this machine (loopback only, its own temporary
folder): a worker is killed mid-run, Ray retries its video, and the dataset equals the local
engine's."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import needs_shared
from tests.test_batch import CLIP, IMAGES, RUNTIME, STREET, assert_no_duplicates, poses_table, posepipe, \
    posepipe_command, sources_table

ray = pytest.importorskip("ray", reason="the Ray engine needs Ray: pip install 'posepipe[ray]'")
from ray.cluster_utils import Cluster  # noqa: E402


@pytest.fixture
def cluster():
    # Ray's sockets live under its temporary folder, whose path must stay short (AF_UNIX: 107 bytes).
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    loopback = {"node_ip_address": "127.0.0.1", "object_store_memory": 100 << 20, "include_dashboard": False}
    two_nodes = Cluster(initialize_head=True, head_node_args={**loopback, "num_cpus": 1, "temp_dir": str(temp)})
    try:
        two_nodes.add_node(**loopback, num_cpus=1)
        two_nodes.wait_for_nodes()
        yield two_nodes
    finally:
        two_nodes.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def process_writing_into(folder: Path) -> int | None:
    """The pid of a process with a file open in ``folder``: the worker tracking a video writes its
    part there (found by what it does, not by its name)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd).startswith(f"{folder}/v"):  # video parts' keys start with v
                    return int(entry.name)
        except OSError:  # gone, or not ours
            continue
    return None


@needs_shared
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the worker through /proc (Linux)")
def test_a_two_node_cluster_loses_a_worker_and_writes_the_local_engines_dataset(cluster, tmp_path):
    inputs = [STREET, CLIP, *sorted(IMAGES.glob("*.jpg"))[:8]]
    out = tmp_path / "ray"
    run = subprocess.Popen(posepipe_command("batch", *inputs, "--out", out, "--engine", "ray", "--address",
                                            cluster.address, "--no-progress", *RUNTIME),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, deadline = None, time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and run.poll() is None:
        victim = process_writing_into(out / ".staging")
        time.sleep(0.05)
    assert victim is not None and victim != run.pid, "no worker was seen tracking the video"
    os.kill(victim, signal.SIGKILL)
    _, stderr = run.communicate(timeout=240)
    assert run.returncode == 0, stderr

    sources = sources_table(out)
    assert set(sources) == {str(p) for p in inputs}
    assert all(row["status"] == "ok" for row in sources.values())
    assert sources[str(STREET)]["frames"] == 205  # redone whole after the kill
    table = poses_table(out)
    assert_no_duplicates(table)

    local = tmp_path / "local"
    done = posepipe("batch", *inputs, "--out", local, "--workers", 2, *RUNTIME)
    assert done.returncode == 0, done.stderr
    assert poses_table(local).equals(table)
