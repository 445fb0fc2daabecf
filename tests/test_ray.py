"""``classify --ray local``: a real in-process Ray cluster gives the local pipeline's rows, byte for byte.

Each test starts Ray in a subprocess (as a user would), so a Ray run costs 10 to 30 s here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bottlecheck.cli.main import main
from tests.helpers import bottle_photo

pytest.importorskip("ray.data", reason="Ray Data is the [ray] extra")
pytestmark = pytest.mark.ray

PHOTOS = 300


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-photos")
    for i in range(PHOTOS):
        (folder / f"{i:04d}.jpg").write_bytes(bottle_photo(i % 3 == 0, size=(480, 640), seed=i))
    (folder / "0150-broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


@pytest.fixture(scope="module")
def local_rows(photos, tmp_path_factory) -> bytes:
    """The local pipeline's JSONL output: what every Ray run must reproduce."""
    out = tmp_path_factory.mktemp("local") / "local.jsonl"
    done = _classify(photos, out)
    assert done.returncode == 1, done.stderr  # the broken photo is an error row
    return out.read_bytes()


def _classify(photos: Path, out: Path, *extra: str, wait: bool = True):
    command = [sys.executable, "-m", "bottlecheck", "classify", str(photos), "-o", str(out), "-q", *extra]
    if wait:
        return subprocess.run(command, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _ray_actor_pids() -> set[int]:
    """Processes of bottlecheck's Ray actors (Ray titles them after the UDF class)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"ClassifyBatch" in cmdline and b"pytest" not in cmdline:
            pids.add(int(entry.name))
    return pids


def test_ray_local_gives_the_local_rows_byte_for_byte(photos, local_rows, tmp_path):
    out = tmp_path / "ray.jsonl"
    done = _classify(photos, out, "--ray", "local")
    assert done.returncode == 1, done.stderr  # same exit status: one error row
    assert out.read_bytes() == local_rows
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == PHOTOS + 1
    assert [row["status"] for row in rows].count("error") == 1


def test_a_killed_worker_is_retried_and_resume_still_gives_every_row_once(photos, local_rows, tmp_path):
    out = tmp_path / "resumed.jsonl"
    lines = local_rows.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:40]))  # an earlier run got this far

    proc = _classify(photos, out, "--ray", "local", "--resume", wait=False)
    killed = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        pids = _ray_actor_pids()
        if pids and out.read_bytes().count(b"\n") > 40:  # the actor has answered; kill it mid-run
            killed = min(pids)
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.05)
    assert killed is not None, "no actor to kill: the run ended first"
    rows_at_kill = out.read_bytes().count(b"\n")
    _, stderr = proc.communicate(timeout=300)
    assert rows_at_kill < PHOTOS + 1, "the kill came after the last row"
    assert proc.returncode == 1, stderr  # the broken photo, nothing else
    assert out.read_bytes() == local_rows, "every row once, in order, as the local run wrote them"


def test_ray_missing_says_how_to_install_it(photos, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    result = CliRunner().invoke(main, ["classify", str(photos / "0000.jpg"), "--ray", "local", "-f", "jsonl"])
    assert result.exit_code == 2
    assert "pip install 'bottlecheck[ray]'" in result.output


def test_rows_keep_input_order_when_one_actors_batch_is_slow(classifier, tmp_path, monkeypatch):
    """Two actors, the first batch far slower than the rest: the fast batches finish first, and their
    rows must still wait for it (without preserve_order they came out first, 2 runs in 3)."""
    import numpy as np
    import ray
    from PIL import Image

    from bottlecheck.runs import ray_batch

    batch = 16
    monkeypatch.setattr(ray_batch, "DEFAULT_RAY_BATCH", batch)  # paths per actor task
    gradient = np.linspace(0, 255, 4000, dtype=np.uint8)
    heavy = tmp_path / "heavy.png"  # 16 megapixels to decode and shrink: about 0.3 s each
    Image.fromarray(
        np.stack(
            [np.tile(gradient, (4000, 1)), np.tile(gradient[:, None], (1, 4000)), np.full((4000, 4000), 90)], 2
        ).astype(np.uint8)
    ).save(heavy, compress_level=1)
    light = tmp_path / "light.jpg"
    light.write_bytes(bottle_photo(True, size=(120, 200)))
    paths = []
    for index in range(batch * 12):
        path = tmp_path / f"{index:03d}{'-heavy.png' if index < batch else '.jpg'}"
        os.link(heavy if index < batch else light, path)  # one file, many names: no disk for 16 copies
        paths.append(str(path))
    ray_batch.connect("local")
    try:
        rows = list(ray_batch.classify_on_ray(paths, classifier, "litert", cpus_per_actor=1))
    finally:
        ray.shutdown()
    assert [row.path for row in rows] == paths
    assert all(row.status != "error" for row in rows)
