"""Third-party clients against a real gunicorn server: the seed's request shapes, keep-alive and
new-connection clients, early refusals on a kept-alive connection, a slow client, and Locust.

Other people's code talks to this API: the seed project's Streamlit page and Locust file, other
implementations' test suites and pages. They post ``file`` (or ``image``), ``files`` or a raw body,
usually over keep-alive connections, and must always get a clean HTTP answer.
"""

from __future__ import annotations

import csv
import http.client
import io
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import requests
from PIL import Image

from tests.helpers import bottle_photo, phone_photo
from tests.server_process import running_server

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parent.parent
KEY = "client-test-key"


def _noisy_photo(megabytes: float = 1.3) -> bytes:
    """A JPEG of about ``megabytes`` (noise compresses badly), like a phone photo's size on the wire."""
    side = int(700 * megabytes**0.5)
    pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


BIG = _noisy_photo()
SMALL = bottle_photo(True, seed=21)


@pytest.fixture(scope="module")
def open_server():
    """No keys, a generous rate limit, a 0.5 MB upload limit (so BIG is a 413), cache off."""
    env = {"BOTTLECHECK_RATE_LIMIT": "100000/minute", "BOTTLECHECK_CACHE_SIZE": "0"}
    with running_server("--max-upload-mb", "0.5", env=env) as (url, _):
        yield url


@pytest.fixture(scope="module")
def guarded_server():
    """API keys and a small rate limit: refusals decided from the headers, before the body is read."""
    env = {"BOTTLECHECK_API_KEYS": KEY, "BOTTLECHECK_RATE_LIMIT": "3/minute"}
    with running_server(env=env) as (url, _):
        yield url


def test_the_seed_request_shapes_get_the_same_answer(open_server):
    url = open_server + "/classify"
    single = requests.post(url, files={"file": ("bottle.jpg", SMALL, "image/jpeg")}, timeout=30)
    assert single.status_code == 200 and set(single.json()) >= {"Bottle_Status", "Confidence"}
    alias = requests.post(url, files={"image": ("bottle.jpg", SMALL, "image/jpeg")}, timeout=30).json()
    raw = requests.post(url, data=SMALL, headers={"Content-Type": "image/jpeg"}, timeout=30).json()
    listed = requests.post(url, files=[("files", ("bottle.jpg", SMALL, "image/jpeg"))], timeout=30).json()
    assert alias == raw == single.json()
    assert isinstance(listed, list) and listed[0]["p_open"] == single.json()["p_open"]


def _keep_alive_refusals(url: str, method: str, expect: set[int], headers=None, threads: int = 4, each: int = 10):
    """Several keep-alive sessions repeat a refused upload; returns the outcome counts."""
    outcomes: Counter = Counter()

    def client() -> None:
        session = requests.Session()
        for _ in range(each):
            try:
                response = session.request(
                    method, url, files={"file": ("big.jpg", BIG, "image/jpeg")}, headers=headers, timeout=30
                )
                body = response.json()  # always JSON, also for refusals
                clean = response.status_code == 200 or "error" in body
                outcomes[response.status_code if clean else f"{response.status_code} without an error"] += 1
            except requests.ConnectionError as exc:
                outcomes[f"connection error: {exc}"[:80]] += 1

    workers = [threading.Thread(target=client) for _ in range(threads)]
    [w.start() for w in workers]
    [w.join() for w in workers]
    assert set(outcomes) <= expect, outcomes
    return outcomes


def test_keep_alive_clients_get_every_early_refusal_cleanly(open_server, guarded_server):
    # Measured before the fix: 8 sessions posting 1.3 MB against a rate limit, 54 of 320
    # requests ended in RemoteDisconnected.
    assert _keep_alive_refusals(guarded_server + "/classify", "POST", {401}) == {401: 40}
    limited = _keep_alive_refusals(guarded_server + "/classify", "POST", {200, 400, 429}, headers={"X-API-Key": KEY})
    assert limited[429] >= 37  # 3 per minute let through (BIG is noise: 200 or 400 "unable")
    assert _keep_alive_refusals(open_server + "/classify", "POST", {413}) == {413: 40}
    assert _keep_alive_refusals(open_server + "/classify", "PUT", {405}) == {405: 40}
    assert _keep_alive_refusals(open_server + "/nowhere", "POST", {404}) == {404: 40}


def test_a_refusal_leaves_the_connection_usable(open_server):
    parts = urlparse(open_server)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    prepared = requests.Request("POST", open_server + "/classify", files={"file": ("b.jpg", BIG)}).prepare()
    connection.request("POST", "/classify", body=prepared.body, headers=dict(prepared.headers))
    refused = connection.getresponse()
    assert refused.status == 413 and refused.read()
    good = requests.Request("POST", open_server + "/classify", files={"file": ("s.jpg", SMALL)}).prepare()
    connection.request("POST", "/classify", body=good.body, headers=dict(good.headers))  # same socket
    answered = connection.getresponse()
    assert answered.status == 200 and b"Bottle_Status" in answered.read()
    connection.close()


def test_new_connection_per_request_clients(open_server):
    statuses = [
        requests.post(open_server + "/classify", files={"file": ("b.jpg", SMALL)}, timeout=30).status_code
        for _ in range(10)
    ]
    assert statuses == [200] * 10


def test_a_slow_client_is_answered(open_server):
    prepared = requests.Request("POST", open_server + "/classify", files={"file": ("b.jpg", SMALL)}).prepare()
    parts = urlparse(open_server)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("POST", "/classify")
    for name, value in prepared.headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    body = prepared.body
    for start in range(0, len(body), len(body) // 10 + 1):  # about 1.5 s for a few KB
        connection.send(body[start : start + len(body) // 10 + 1])
        time.sleep(0.15)
    response = connection.getresponse()
    assert response.status == 200 and b"Bottle_Status" in response.read()


def test_locust_runs_headless_with_no_failures(open_server, tmp_path):
    # Warm the server first (its model copies allocate at their first batch of phone photos), and
    # give Locust time: 4 s against a busy 2-core machine ended with 0 requests 3 times in 5.
    # Requests still in flight at the end are waited for, so each one counts.
    warm = requests.post(open_server + "/classify", files={"file": ("w.jpg", phone_photo(999))}, timeout=60)
    assert warm.status_code == 200
    prefix = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "benchmarks" / "locustfile.py"),
            "--headless",
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--run-time",
            "12s",
            "--stop-timeout",
            "30",
            "--host",
            open_server,
            "--csv",
            str(prefix),
            "--only-summary",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BOTTLECHECK_PHOTOS": ""},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(f"{prefix}_stats.csv", newline="") as stream:
        total = next(row for row in csv.DictReader(stream) if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) >= 10 and int(total["Failure Count"]) == 0, total
    assert not Path(f"{prefix}_failures.csv").read_text().strip().splitlines()[1:]
