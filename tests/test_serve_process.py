"""A real ``bottlecheck serve`` (gunicorn) on a loopback port: contract, shutdown, and the web page in Chromium."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from bottlecheck.labels import STATUSES
from tests.helpers import bottle_photo, phone_photo
from tests.server_process import running_server

pytestmark = pytest.mark.server


@pytest.fixture
def server():
    with running_server() as (url, proc):
        yield url, proc


def test_real_server_contract(server):
    url, _ = server
    response = requests.post(url + "/classify", files={"file": ("a.jpg", bottle_photo(True, seed=1), "image/jpeg")})
    assert response.status_code == 200
    body = response.json()
    assert body["Bottle_Status"] in STATUSES and 0.5 <= body["Confidence"] <= 1
    assert requests.post(url + "/classify").json()["error"] == "No file uploaded"
    bad = requests.post(url + "/classify", files={"file": ("x.png", b"<svg></svg>", "image/png")})
    assert bad.status_code == 400 and bad.json()["error"] == "Unable to process image"
    assert "bottlecheck_http_requests_total" in requests.get(url + "/metrics").text


def test_sigterm_lets_requests_in_flight_finish(server):
    """SIGTERM arrives while a request is certainly in flight: its body is held back half sent."""
    url, proc = server
    photos = [("files", (f"{i}.jpg", phone_photo(i), "image/jpeg")) for i in range(6)]
    prepared = requests.Request("POST", url + "/classify", files=photos).prepare()
    body = prepared.body
    half_sent, signalled = threading.Event(), threading.Event()
    outcome = {}

    def in_flight_request():
        host, port = urlparse(url).hostname, urlparse(url).port
        connection = http.client.HTTPConnection(host, port, timeout=60)
        connection.putrequest("POST", "/classify")
        connection.putheader("Content-Type", prepared.headers["Content-Type"])
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        connection.send(body[: len(body) // 2])
        half_sent.set()
        signalled.wait(timeout=30)
        connection.send(body[len(body) // 2 :])
        response = connection.getresponse()
        outcome["status"], outcome["body"] = response.status, json.loads(response.read())
        connection.close()

    thread = threading.Thread(target=in_flight_request)
    thread.start()
    assert half_sent.wait(timeout=30)
    time.sleep(0.2)  # the server has the headers and half the body: the request is in flight
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the master has passed SIGTERM on; the worker is shutting down gracefully
    signalled.set()
    thread.join(timeout=60)
    assert outcome["status"] == 200
    assert len(outcome["body"]) == 6 and all("Bottle_Status" in item for item in outcome["body"])
    assert proc.wait(timeout=30) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/healthz", timeout=2)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHROMIUM = "/usr/bin/chromium"


def test_web_page_in_headless_chromium(server, tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is required in CI (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    url, _ = server
    photo = tmp_path / "bottle.jpg"
    shutil.copy(EXAMPLES / "rendered_closed_1.jpg", photo)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        page.goto(url + "/")
        page.set_input_files("#file", str(photo))
        page.wait_for_function(
            "() => /^(OPEN|CLOSED|UNKNOWN) \\(confidence \\d+\\.\\d%\\)( · \\d+ tops?, \\d+ open)?$/"
            ".test(document.querySelector('#result').textContent)",
            timeout=20000,
        )
        text = page.text_content("#result")
        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot))
        browser.close()
    expected = requests.post(url + "/classify", files={"file": ("b.jpg", photo.read_bytes(), "image/jpeg")}).json()
    assert text.startswith(expected["Bottle_Status"].upper())
    assert f"{expected['Confidence'] * 100:.1f}%" in text
    assert shot.stat().st_size > 1000


@pytest.mark.parametrize("features", ["off", "on"])
def test_the_page_shows_only_the_controls_of_features_that_are_on_and_readable_labels(tmp_path, features):
    """What a person sees at 360 px wide: the key field and review box only when configured; box labels
    at least 10 screen pixels tall that do not cover each other on a photo with six tops."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is required in CI (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    env = {}
    if features == "on":
        (tmp_path / "uploads").mkdir()
        env = {"BOTTLECHECK_API_KEYS": "secret-key", "BOTTLECHECK_REVIEW_UPLOADS": str(tmp_path / "uploads")}
    with running_server(env=env) as (url, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 360, "height": 740})
        page.goto(url + "/")
        shown = {row: page.is_visible(row) for row in ("#keyrow", "#reviewrow")}
        if features == "on":
            page.fill("#apikey", "secret-key")
        page.set_input_files("#file", str(EXAMPLES / "rendered_closed_2.jpg"))
        page.wait_for_function("document.querySelectorAll('#boxes text').length >= 2", timeout=20000)
        labels = page.eval_on_selector_all(
            "#boxes text",
            "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })",
        )
        browser.close()
    assert shown == {"#keyrow": features == "on", "#reviewrow": features == "on"}
    assert all(bottom - top >= 10 for _, top, _, bottom in labels), labels
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)


def test_metrics_add_up_across_worker_processes_and_their_folder_goes_at_exit(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"BOTTLECHECK_CACHE_SIZE": "0", "TMPDIR": str(scratch)}
    with running_server("--workers", "2", env=env) as (url, _):
        assert [p.name.startswith("bottlecheck-metrics-") for p in scratch.iterdir()] == [True]
        for seed in range(12):  # new connections: spread over both workers
            photo = bottle_photo(seed % 2 == 0, seed=seed)
            assert requests.post(url + "/classify", files={"file": ("b.jpg", photo)}, timeout=30).status_code == 200
        text = requests.get(url + "/metrics", timeout=10).text
    answered = sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("bottlecheck_images_total{")
    )
    assert answered == 12, text
    assert list(scratch.iterdir()) == []  # the server stopped cleanly (SIGTERM): its metrics files are gone


def test_a_port_in_use_is_one_line_naming_the_fix():
    from tests.server_process import bottlecheck_script

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [bottlecheck_script(), "serve", "--port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert f"127.0.0.1:{port}" in done.stderr and "different port" in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) <= 3 and "Traceback" not in done.stderr  # click's two usage lines and the error


def test_every_server_log_line_is_json(tmp_path):
    from tests.server_process import bottlecheck_script, free_port

    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [bottlecheck_script(), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            for _ in range(200):
                try:
                    if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                        break
                except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow on a loaded machine
                    time.sleep(0.1)
            requests.post(f"http://127.0.0.1:{port}/classify", timeout=10)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # gunicorn's own lines included
    assert {r["logger"] for r in records} >= {"gunicorn.error", "bottlecheck.access"}
    assert any(r.get("path") == "/classify" and r.get("status") == 400 for r in records)


def test_server_logs_read_as_text_on_a_terminal():
    """LOG_FORMAT auto: a person who runs ``bottlecheck serve`` in a terminal reads lines, not JSON."""
    import pty

    from tests.server_process import bottlecheck_script, free_port

    port = free_port()
    leader, follower = pty.openpty()
    proc = subprocess.Popen([bottlecheck_script(), "serve", "--port", str(port)], stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    try:
        deadline = time.time() + 60
        while b"Listening at" not in seen and time.time() < deadline and proc.poll() is None:
            try:
                seen += os.read(leader, 4096)
            except OSError:  # the terminal closed: the server is gone
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        os.close(leader)
    lines = [line for line in seen.decode(errors="replace").splitlines() if line.strip()]
    assert any("Listening at" in line for line in lines), lines
    assert not any(line.lstrip().startswith("{") for line in lines), lines  # no JSON object on a terminal
