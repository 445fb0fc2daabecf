"""The HTTP contract and its errors, through Flask's test client."""

from __future__ import annotations

import functools
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bottlecheck.labels import STATUSES
from bottlecheck.server import create_app
from tests.helpers import bottle_photo, png_header_only

JPEG = bottle_photo(True, seed=5)
PNG = bottle_photo(False, seed=6, fmt="PNG")


@pytest.fixture
def make_client(classifier):
    def make(**config):
        app = create_app(config, classifier=classifier)
        app.testing = True
        return app.test_client()

    return make


@pytest.fixture
def client(make_client):
    return make_client()


def post(client, *files, field="file", headers=None):
    data = {field: [(io.BytesIO(content), name) for name, content in files]} if files else {}
    return client.post("/classify", data=data, content_type="multipart/form-data", headers=headers or {})


def test_contract_single_file(client, classifier):
    for name, content in (("a.jpg", JPEG), ("b.png", PNG)):
        response = post(client, (name, content))
        assert response.status_code == 200
        body = response.get_json()
        assert list(body)[:2] == ["Bottle_Status", "Confidence"]
        expected = classifier.classify(content)
        assert body["Bottle_Status"] == expected.status
        assert body["Confidence"] == pytest.approx(expected.confidence, abs=1e-4)
        assert body["Confidence"] == round(expected.confidence, 4)  # rounded as the writers round
        assert 0.5 <= body["Confidence"] <= 1
        assert response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("example", "counts"),
    [
        ("rendered_open_2.jpg", {"bottles": 2, "open": 1, "closed": 1}),
        ("rendered_closed_2.jpg", {"bottles": 6, "open": 0, "closed": 6}),
    ],
)
def test_the_counts_and_bottles_say_how_many_tops_are_open_and_closed(client, classifier, example, counts):
    """The API's per-top answer: a table with one open and one closed bottle, and a row of six capped ones."""
    content = (Path(__file__).resolve().parent.parent / "examples" / example).read_bytes()
    body = post(client, (example, content)).get_json()
    expected = classifier.classify(content)
    assert body["counts"] == counts
    statuses = [b["status"] for b in body["bottles"]]
    assert (statuses.count("open"), statuses.count("closed")) == (counts["open"], counts["closed"])
    assert [b["box"] for b in body["bottles"]] == [list(top.box) for top in expected.tops or ()]
    assert [b["confidence"] for b in body["bottles"]] == [
        pytest.approx(top.confidence, abs=1e-4) for top in expected.tops or ()
    ]


def test_no_file_and_unreadable_file(client):
    response = client.post("/classify")
    body = response.get_json()
    assert response.status_code == 400 and body["error"] == "No file uploaded"
    assert "'file'" in body["detail"] and "received: none" in body["detail"]
    response = post(client, ("x.jpg", b"definitely not an image"))
    body = response.get_json()
    assert response.status_code == 400 and body["error"] == "Unable to process image"
    assert body["detail"] == "not a readable image (unknown format)"  # the same detail a list item carries
    response = post(client, ("empty.png", b""))
    assert response.status_code == 400 and response.get_json()["error"] == "Unable to process image"
    assert response.get_json()["detail"] == "empty file (0 bytes)"


def test_a_wrong_field_name_is_told_which_fields_work(client):
    response = post(client, ("a.jpg", JPEG), field="photo")
    body = response.get_json()
    assert response.status_code == 400 and body["error"] == "No file uploaded"
    assert "['photo']" in body["detail"] and "'file'" in body["detail"] and "'files'" in body["detail"]


def test_image_is_accepted_as_an_alias_of_file(client):
    by_alias = post(client, ("a.jpg", JPEG), field="image").get_json()
    by_contract = post(client, ("a.jpg", JPEG), field="file").get_json()
    assert by_alias == by_contract and by_alias["Bottle_Status"] in STATUSES


def test_several_files_answer_a_list_in_order(client):
    response = post(client, ("a.jpg", JPEG), ("bad.jpg", b"nope"), ("c.png", PNG), field="files")
    assert response.status_code == 200
    body = response.get_json()
    assert [item["filename"] for item in body] == ["a.jpg", "bad.jpg", "c.png"]
    assert body[1]["error"] == "Unable to process image" and "Bottle_Status" in body[0] and "Bottle_Status" in body[2]
    repeated = post(client, ("a.jpg", JPEG), ("c.png", PNG), field="file")
    assert isinstance(repeated.get_json(), list) and len(repeated.get_json()) == 2


def test_raw_image_body(client):
    response = client.post("/classify", data=JPEG, content_type="image/jpeg")
    assert response.status_code == 200 and response.get_json()["Bottle_Status"] in STATUSES


def test_api_keys(make_client, tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# ops\nsecret-one\nsecret-two\n")
    client = make_client(API_KEYS_FILE=str(keys_file), API_KEYS="env-key")
    assert post(client, ("a.jpg", JPEG)).status_code == 401
    assert post(client, ("a.jpg", JPEG)).get_json() == {"error": "Missing or invalid API key"}
    assert post(client, ("a.jpg", JPEG), headers={"X-API-Key": "wrong"}).status_code == 401
    assert post(client, ("a.jpg", JPEG), headers={"X-API-Key": "secret-two"}).status_code == 200
    assert post(client, ("a.jpg", JPEG), headers={"Authorization": "Bearer env-key"}).status_code == 200
    assert client.get("/healthz").status_code == 200  # probes need no key


def test_rate_limit_answers_429_with_retry_after(make_client):
    client = make_client(RATE_LIMIT="3/minute")
    statuses = [post(client, ("a.jpg", JPEG)).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    response = post(client, ("a.jpg", JPEG))
    assert response.get_json() == {"error": "Rate limit exceeded"}
    assert int(response.headers["Retry-After"]) >= 1
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("off", ["off", "OFF", ""])
def test_rate_limit_off_leaves_limits_to_the_ingress(make_client, off):
    """No limiter at all: no request is refused however many, and no X-RateLimit headers are sent."""
    client = make_client(RATE_LIMIT=off)
    responses = [post(client, ("a.jpg", JPEG)) for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert not any(name.startswith("X-RateLimit") for r in responses for name in r.headers.keys())
    assert client.application.extensions["bottlecheck.limiter"] is None


def test_upload_too_large_is_413_json(make_client):
    client = make_client(MAX_UPLOAD_MB=0.01)
    response = post(client, ("big.jpg", b"\xff" * 20_000))
    assert response.status_code == 413 and response.get_json()["error"] == "Upload too large"


def test_too_many_files_and_form_parts(make_client):
    client = make_client(MAX_FILES=2, MAX_FORM_PARTS=10)
    assert post(client, *[(f"{i}.jpg", JPEG) for i in range(3)], field="files").status_code == 413
    data = {f"field{i}": "x" for i in range(50)}
    response = client.post("/classify", data=data, content_type="multipart/form-data")
    assert response.status_code == 413 and "error" in response.get_json()


def test_file_and_image_together_are_answered_as_a_list_in_field_order_as_documented(client):
    """'image' is another name for 'file': two photos in them get a list, as docs/api.md and OpenAPI say."""
    data = {"image": [(io.BytesIO(PNG), "b.png")], "file": [(io.BytesIO(JPEG), "a.jpg")]}
    listed = client.post("/classify", data=data, content_type="multipart/form-data").get_json()
    assert [item["filename"] for item in listed] == ["a.jpg", "b.png"]  # file, then image
    one_by_one = [post(client, (name, content)).get_json() for name, content in (("a", JPEG), ("b", PNG))]
    assert [item["Bottle_Status"] for item in listed] == [item["Bottle_Status"] for item in one_by_one]
    document = client.get("/openapi.json").get_json()["paths"]["/classify"]["post"]
    fields = document["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert "as a list" in fields["image"]["description"] and "field order" in fields["files"]["description"]
    api_docs = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    assert "`file` and `image` are one field under two names" in api_docs


def test_decompression_bomb_is_a_400(client):
    response = post(client, ("bomb.png", png_header_only(100_000, 100_000)))
    assert response.status_code == 400 and response.get_json()["error"] == "Unable to process image"


def around_model_calls(service, call) -> None:
    """Each batching thread's model call becomes ``call(copy, infer, batch)``, ``infer`` the copy's own."""
    for copy in service.copies:
        copy.infer = functools.partial(call, copy, copy.infer)


def test_cache_skips_inference_for_a_repeated_image(make_client, classifier):
    client = make_client()
    service = client.application.extensions["bottlecheck"]
    calls = []
    around_model_calls(service, lambda copy, infer, batch: calls.append(len(batch)) or infer(batch))
    first = post(client, ("a.jpg", JPEG)).get_json()
    second = post(client, ("again.jpg", JPEG)).get_json()
    assert first == second and calls == [1]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "bottlecheck_cache_hits_total 1.0" in metrics


def test_the_cache_forgets_the_answer_used_longest_ago_not_the_newest():
    from bottlecheck.server.cache import LRUCache

    cache = LRUCache(max_items=2)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.set("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_with_the_cache_off_every_request_runs_the_model_and_nothing_is_hashed(make_client, monkeypatch):
    client = make_client(CACHE_SIZE=0)
    service = client.application.extensions["bottlecheck"]
    calls = []
    around_model_calls(service, lambda copy, infer, batch: calls.append(len(batch)) or infer(batch))
    hashed = []
    monkeypatch.setattr("bottlecheck.server.service.cache_key", lambda *args: hashed.append(1) or "key")
    first = post(client, ("a.jpg", JPEG)).get_json()
    assert post(client, ("again.jpg", JPEG)).get_json() == first
    assert calls == [1, 1] and hashed == []


def test_replicas_sharing_a_cache_with_different_thresholds_keep_their_own_decisions(make_client, classifier):
    """A two-stage result is cached with its statuses decided: the key must hold the threshold (issue 20)."""
    p_open = classifier.classify(JPEG).p_open
    assert p_open is not None and p_open < 0.9999
    lenient, strict = make_client(THRESHOLD=p_open / 2), make_client(THRESHOLD=0.9999)
    shared = lenient.application.extensions["bottlecheck"].cache  # one cache for both, as Redis is for replicas
    strict.application.extensions["bottlecheck"].cache = shared
    assert post(lenient, ("a.jpg", JPEG)).get_json()["Bottle_Status"] == "open"
    assert post(strict, ("a.jpg", JPEG)).get_json()["Bottle_Status"] == "closed"
    assert post(strict, ("a.jpg", JPEG)).get_json()["Bottle_Status"] == "closed"  # its own entry, from the cache
    metrics = strict.get("/metrics").get_data(as_text=True)
    assert "bottlecheck_cache_hits_total 1.0" in metrics
    same = make_client(THRESHOLD=0.9999)
    same.application.extensions["bottlecheck"].cache = shared
    assert post(same, ("a.jpg", JPEG)).get_json()["Bottle_Status"] == "closed"
    assert "bottlecheck_cache_hits_total 1.0" in same.get("/metrics").get_data(as_text=True)  # same settings: shared


def test_micro_batching_gathers_concurrent_requests(make_client):
    client = make_client(BATCH_MAX_WAIT_MS=200, BATCH_MAX_SIZE=8, CACHE_SIZE=0)
    service = client.application.extensions["bottlecheck"]
    sizes = []
    around_model_calls(service, lambda copy, infer, batch: sizes.append(len(batch)) or infer(batch))
    images = [bottle_photo(i % 2 == 0, seed=50 + i) for i in range(6)]
    barrier = threading.Barrier(6)
    results = [None] * 6

    def worker(i):
        local = client.application.test_client()
        barrier.wait()
        results[i] = post(local, (f"{i}.jpg", images[i])).status_code

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 6
    assert sum(sizes) == 6 and max(sizes) > 1, f"batches were {sizes}"


def test_each_model_copy_has_its_own_batching_thread_and_answers_its_own_requests(make_client, classifier):
    client = make_client(MODEL_COPIES=3, CACHE_SIZE=0)
    service = client.application.extensions["bottlecheck"]
    assert service.batcher.lanes == 3
    used = set()
    around_model_calls(service, lambda copy, infer, batch: used.add(id(copy)) or infer(batch))
    photos = [bottle_photo(i % 2 == 0, seed=300 + i) for i in range(12)]
    expected = [classifier.classify(photo).status for photo in photos]
    answers = [None] * len(photos)

    def ask(i):
        answers[i] = post(client.application.test_client(), (f"{i}.jpg", photos[i])).get_json()["Bottle_Status"]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(photos))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == expected
    assert used and id(classifier) not in used  # copies, never the shared multi-threaded model
    assert all(copy.finder is not classifier.finder for copy in service.copies)  # each with engines of its own
    assert make_client(MODEL_COPIES=1).application.extensions["bottlecheck"].batcher.lanes == 1


def test_full_queue_answers_503_at_once(make_client):
    client = make_client(QUEUE_MAX=1, CACHE_SIZE=0, MODEL_COPIES=1)  # one batch in the model, one queued
    service = client.application.extensions["bottlecheck"]
    gate = threading.Event()

    def slow(copy, infer, batch):
        gate.wait(10)
        return infer(batch)

    around_model_calls(service, slow)
    first = threading.Thread(target=lambda: post(client.application.test_client(), ("1.jpg", JPEG)))
    first.start()
    import time

    time.sleep(0.3)  # the first request is now inside the model
    second = threading.Thread(target=lambda: post(client.application.test_client(), ("2.jpg", PNG)))
    second.start()
    time.sleep(0.3)  # the second fills the one queue slot
    response = post(client, ("3.jpg", bottle_photo(True, seed=77)))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert client.get("/healthz").status_code == 200
    gate.set()
    first.join()
    second.join()


def test_probes_metrics_openapi_and_page(client):
    post(client, ("a.jpg", JPEG))
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["model_version"]
    metrics = client.get("/metrics").get_data(as_text=True)
    for name in (
        "bottlecheck_http_requests_total{",
        "bottlecheck_http_request_duration_seconds_bucket",
        "bottlecheck_batch_size_bucket",
        "bottlecheck_model_info{version=",
    ):
        assert name in metrics
    assert 'route="/classify",status="200"' in metrics
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.") and "/classify" in spec["paths"]
    page = client.get("/")
    assert page.status_code == 200 and b"Drop" in page.data


def test_errors_never_leak_a_stack_trace(make_client):
    client = make_client()
    service = client.application.extensions["bottlecheck"]

    def explode(copy, infer, batch):
        raise RuntimeError("secret internal detail")

    around_model_calls(service, explode)
    response = post(client, ("a.jpg", bottle_photo(True, seed=123)))
    assert response.status_code == 500
    assert response.get_json()["error"] == "Internal server error"
    assert b"secret" not in response.data and b"Traceback" not in response.data
    assert client.get("/nope").get_json() == {"error": "Not found"}
    assert client.get("/classify").status_code == 405


def test_access_log_line_has_key_id_but_never_the_key(make_client, caplog):
    client = make_client(API_KEYS="top-secret-key")
    with caplog.at_level("INFO", logger="bottlecheck.access"):
        post(client, ("a.jpg", JPEG), headers={"X-API-Key": "top-secret-key"})
    line = json.loads(caplog.records[-1].getMessage())
    assert line["status"] == 200 and line["path"] == "/classify" and line["key_id"]
    assert "top-secret-key" not in caplog.text


def test_grayscale_and_exif_uploads(client):
    gray = io.BytesIO()
    Image.fromarray(np.full((64, 48), 128, np.uint8)).save(gray, "PNG")
    assert post(client, ("g.png", gray.getvalue())).status_code == 200

    # A phone stores a portrait shot as landscape pixels plus an EXIF Orientation tag (6: turn
    # 90 degrees clockwise to view). The answer must be the upright photo's, not the sideways one's.
    upright = Image.open(io.BytesIO(bottle_photo(True, size=(180, 320), seed=8))).convert("RGB")
    sideways = upright.rotate(90, expand=True)

    def png(image, orientation=None) -> bytes:
        buffer = io.BytesIO()
        exif = Image.Exif()
        if orientation:
            exif[0x0112] = orientation
        image.save(buffer, "PNG", exif=exif)
        return buffer.getvalue()

    answer = post(client, ("upright.png", png(upright))).get_json()
    tagged = post(client, ("tagged.png", png(sideways, orientation=6))).get_json()
    untagged = post(client, ("untagged.png", png(sideways))).get_json()
    assert tagged["p_open"] == answer["p_open"]
    assert untagged["p_open"] != answer["p_open"]  # so the tag, not chance, made them equal


def test_a_request_id_is_echoed_when_sane_and_replaced_when_not(client):
    assert client.get("/healthz", headers={"X-Request-ID": "line-7.frame_42"}).headers["X-Request-ID"] == (
        "line-7.frame_42"
    )
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id; drop table"}).headers["X-Request-ID"]
    assert replaced != "bad id" and len(replaced) == 32 and replaced.isalnum()


def test_trusted_proxies_let_the_forwarded_address_choose_the_rate_limit_bucket(make_client):
    client = make_client(TRUSTED_PROXIES=1, RATE_LIMIT="1/minute", CACHE_SIZE=0)

    def from_address(address):
        return post(client, ("a.jpg", JPEG), headers={"X-Forwarded-For": address}).status_code

    assert from_address("203.0.113.7") == 200
    assert from_address("203.0.113.7") == 429  # the same client behind the proxy
    assert from_address("198.51.100.9") == 200  # another client behind the same proxy


def test_without_trusted_proxies_x_forwarded_for_does_not_choose_the_rate_limit_bucket(make_client):
    """By default the header is the client's own claim: believing it would give every request a bucket."""
    client = make_client(RATE_LIMIT="1/minute", CACHE_SIZE=0)

    def from_address(address):
        return post(client, ("a.jpg", JPEG), headers={"X-Forwarded-For": address}).status_code

    assert from_address("203.0.113.7") == 200
    assert from_address("198.51.100.9") == 429  # the same peer, whatever it claims
    assert post(client, ("a.jpg", JPEG)).status_code == 429


def test_an_api_key_is_accepted_whole_never_by_prefix_or_extension(make_client):
    client = make_client(API_KEYS="secret-one")
    for token in ("secret-one", "secret-on", "secret", "s", "secret-one-and-more", "SECRET-ONE"):
        for headers in ({"X-API-Key": token}, {"Authorization": f"Bearer {token}"}):
            expected = 200 if token == "secret-one" else 401
            assert post(client, ("a.jpg", JPEG), headers=headers).status_code == expected, (token, headers)


def test_a_request_that_outwaits_the_model_is_refused_with_503(make_client):
    client = make_client(REQUEST_TIMEOUT_S=1e-9, CACHE_SIZE=0)
    response = post(client, ("a.jpg", JPEG))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json() == {"error": "Server busy, retry shortly"}


def test_retry_after_only_on_refusals(make_client):
    client = make_client(RATE_LIMIT="2/minute", CACHE_SIZE=0)
    answered = post(client, ("a.jpg", JPEG))
    assert answered.status_code == 200 and "Retry-After" not in answered.headers
    assert "X-RateLimit-Limit" in answered.headers  # the limiter's own headers stay
    post(client, ("a.jpg", JPEG))
    refused = post(client, ("a.jpg", JPEG))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def test_metrics_count_a_wrong_method_under_its_route_and_have_no_created_series(client):
    assert client.get("/classify").status_code == 405
    text = client.get("/metrics").get_data(as_text=True)
    assert 'bottlecheck_http_requests_total{method="GET",route="/classify",status="405"} 1.0' in text
    assert "unmatched" not in text and "_created" not in text


def test_queue_depth_and_requests_in_flight_are_gauges(client):
    post(client, ("a.jpg", JPEG))
    text = client.get("/metrics").get_data(as_text=True)
    values = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line.startswith("bottlecheck_")
    }
    assert values["bottlecheck_queue_depth"] == 0.0  # the answer is out: nothing waits
    assert values["bottlecheck_requests_in_flight"] == 1.0  # the scrape itself


def test_a_phone_sized_upload_is_parsed_in_memory_not_spooled_to_a_temporary_file(make_client):
    """Werkzeug spools a file part over 500 KB to disk; the app's request class keeps it in memory."""
    import io

    from flask import Request
    from werkzeug.test import EnvironBuilder

    photo = b"\xff\xd8" + bytes(700_000) + b"\xff\xd9"  # the parser cares about size, not pixels
    environ = EnvironBuilder(method="POST", data={"file": (io.BytesIO(photo), "phone.jpg")}).get_environ()
    body = environ["wsgi.input"].read()

    def stream_of(request_class):
        request = request_class({**environ, "wsgi.input": io.BytesIO(body)})
        storage = request.files["file"]
        assert storage.read() == photo
        return storage.stream

    assert not isinstance(stream_of(Request), io.BytesIO)  # Flask's own: a file on disk
    app = make_client().application
    assert isinstance(stream_of(app.request_class), io.BytesIO)
