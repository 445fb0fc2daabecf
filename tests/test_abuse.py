"""Overload and abuse against a real gunicorn server: each gets the right status, and it keeps serving."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import numpy as np
import pytest
import requests

from bottlecheck.labels import STATUSES
from tests.helpers import bottle_photo, phone_photo
from tests.server_process import running_server

pytestmark = pytest.mark.server


def test_flood_past_the_queue_gets_fast_503s_while_probes_and_others_succeed():
    env = {
        "BOTTLECHECK_QUEUE_MAX": "1",
        "BOTTLECHECK_BATCH_MAX_SIZE": "1",
        "BOTTLECHECK_CACHE_SIZE": "0",
        "BOTTLECHECK_RATE_LIMIT": "100000/minute",
    }
    photos = [phone_photo(i) for i in range(48)]
    with running_server(env=env, threads=24) as (url, _):
        probe_statuses = []
        stop = threading.Event()

        def probe():
            while not stop.is_set():
                probe_statuses.append(requests.get(url + "/healthz", timeout=10).status_code)
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()

        def send(photo):
            response = requests.post(url + "/classify", files={"file": ("p.jpg", photo, "image/jpeg")}, timeout=60)
            elapsed = response.elapsed.total_seconds()
            return response.status_code, response.headers.get("Retry-After"), response.json(), elapsed

        with ThreadPoolExecutor(24) as pool:
            results = list(pool.map(send, photos))
        stop.set()
        prober.join()

    statuses = [status for status, *_ in results]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) > 0, "the flood never filled a one-slot queue"
    assert statuses.count(200) > 0, "requests that got a slot must be answered"
    for status, retry_after, body, _ in results:
        if status == 503:
            assert retry_after == "1" and body == {"error": "Server busy, retry shortly"}
        else:
            assert body["Bottle_Status"] in STATUSES
    # Refusals do not queue: they come back sooner than the answers that waited for the model.
    refused = np.median([t for status, *_, t in results if status == 503])
    answered = np.median([t for status, *_, t in results if status == 200])
    assert refused < answered, (refused, answered)
    assert probe_statuses and set(probe_statuses) == {200}


def test_unauthenticated_and_wrong_keys():
    with running_server(env={"BOTTLECHECK_API_KEYS": "k-123,k-456"}) as (url, _):
        files = {"file": ("a.jpg", bottle_photo(True, seed=1), "image/jpeg")}
        assert requests.post(url + "/classify", files=files).status_code == 401
        wrong = requests.post(url + "/classify", files=files, headers={"X-API-Key": "k-12"})
        assert wrong.status_code == 401 and wrong.json() == {"error": "Missing or invalid API key"}
        right = requests.post(url + "/classify", files=files, headers={"Authorization": "Bearer k-456"})
        assert right.status_code == 200
        assert requests.get(url + "/healthz").status_code == 200


def test_thousands_of_tiny_requests_are_rate_limited_and_service_continues():
    env = {"BOTTLECHECK_RATE_LIMIT": "50/minute"}
    with running_server(env=env) as (url, _), requests.Session() as session:
        statuses = [session.post(url + "/classify").status_code for _ in range(1000)]
        assert statuses[:50] == [400] * 50  # no file: counted, answered
        assert set(statuses[50:]) == {429}
        limited = session.post(url + "/classify")
        assert limited.json() == {"error": "Rate limit exceeded"} and int(limited.headers["Retry-After"]) >= 1
        # Another client (another key would do too) is unaffected, and so are the probes.
        other = requests.post(
            url + "/classify",
            files={"file": ("a.jpg", bottle_photo(True, seed=2), "image/jpeg")},
            headers={"X-Forwarded-For": "10.9.9.9"},
        )
        assert other.status_code == 429, "X-Forwarded-For must not be trusted by default"
        assert requests.get(url + "/healthz").status_code == 200


def test_oversized_body_and_huge_multipart_field_counts():
    with running_server("--max-upload-mb", "1") as (url, _):
        big = requests.post(url + "/classify", files={"file": ("big.jpg", b"\xff" * 2_000_000, "image/jpeg")})
        assert big.status_code == 413 and big.json() == {"error": "Upload too large"}
        fields = {f"f{i}": "x" for i in range(5000)}
        many = requests.post(url + "/classify", files={"file": ("a.jpg", b"x", "image/jpeg")}, data=fields)
        assert many.status_code == 413 and "error" in many.json()
        files = [("files", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(40)]
        assert requests.post(url + "/classify", files=files).status_code == 413
        ok = requests.post(url + "/classify", files={"file": ("a.jpg", bottle_photo(False, seed=3), "image/jpeg")})
        assert ok.status_code == 200


def test_slow_clients_do_not_take_the_service_down():
    with running_server(threads=8) as (url, _):
        address = urlparse(url)
        slow = []
        for _ in range(5):  # slowloris: headers that never finish
            sock = socket.create_connection((address.hostname, address.port))
            sock.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n")
            slow.append(sock)
        try:
            response = requests.post(
                url + "/classify", timeout=20, files={"file": ("a.jpg", bottle_photo(True, seed=4), "image/jpeg")}
            )
            assert response.status_code == 200
            assert requests.get(url + "/healthz", timeout=20).status_code == 200
        finally:
            for sock in slow:
                sock.close()


@pytest.mark.parametrize("path", ["/classify", "/metrics"])
def test_wrong_methods_are_json_errors(path):
    with running_server() as (url, _):
        response = requests.request("DELETE", url + path)
        assert response.status_code == 405 and response.json() == {"error": "Method not allowed"}
