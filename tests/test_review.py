"""``bottlecheck review`` (issue 23): the labels file, the order, the export, the page and the loop back into training.

The unit tests are quick (no model, no browser). The browser test (``server``, ``slow``) runs the
whole loop a QA engineer would: classify, review with the keyboard in Debian's Chromium, a kill
half-way, export, train, compare; it also makes the README's screenshots.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from bottlecheck.datasets import corrected_tops, scan_image_folder
from bottlecheck.review.compare import check_model, summary
from bottlecheck.review.export import export
from bottlecheck.review.queue import items_from_rows, order, read_rows, review_items
from bottlecheck.review.store import LabelStore, labels_path_for

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def _photo(path: Path, size=(60, 40)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 80, 40)).save(path)
    return str(path)


def _results(tmp_path: Path, rows: list[dict]) -> Path:
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return results


# ------------------------------------------------------------------ the labels file
def test_each_decision_is_in_the_file_at_once_and_a_new_store_resumes_from_it(tmp_path):
    path = labels_path_for(tmp_path / "results.jsonl")
    assert path.name == "results.jsonl.labels.json"
    store = LabelStore(path)
    store.put("a.jpg", {"label": "open", "added": [[1, 2, 11, 12]]})
    store.put("b.jpg", {"label": "closed"})
    on_disk = json.loads(path.read_text())["labels"]
    assert on_disk["a.jpg"]["label"] == "open" and on_disk["a.jpg"]["added"] == [[1.0, 2.0, 11.0, 12.0]]
    again = LabelStore(path).labels()  # a restarted process
    assert {photo: entry["label"] for photo, entry in again.items()} == {"a.jpg": "open", "b.jpg": "closed"}
    store.put("a.jpg", None)  # undo to nothing
    assert set(LabelStore(path).labels()) == {"b.jpg"}
    with pytest.raises(ValueError):
        store.put("c.jpg", {"label": "opne"})  # a typo never becomes a folder at export


def test_a_write_that_dies_before_the_rename_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "r.labels.json"
    store = LabelStore(path)
    store.put("a.jpg", {"label": "open"})
    before = path.read_bytes()

    def killed(*_args):
        raise KeyboardInterrupt  # a kill between writing the temporary file and renaming it

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        store.put("b.jpg", {"label": "closed"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _write_many(path: str, prefix: str, count: int) -> None:
    store = LabelStore(path)
    for k in range(count):
        store.put(f"{prefix}{k}.jpg", {"label": "open" if k % 2 else "closed"})
        store.put("shared.jpg", {"label": "open" if prefix == "a" else "closed"})


def test_two_writers_on_one_file_lose_nothing_and_the_last_write_per_photo_wins(tmp_path):
    path = tmp_path / "r.labels.json"
    first, second = LabelStore(path), LabelStore(path)
    first.labels()  # both have read the (empty) file
    second.labels()
    first.put("x.jpg", {"label": "open"})
    second.put("y.jpg", {"label": "closed"})  # merged with what the first wrote, not over it
    second.put("x.jpg", {"label": "closed"})  # the same photo: the last write wins
    assert {p: e["label"] for p, e in first.labels().items()} == {"x.jpg": "closed", "y.jpg": "closed"}

    # Two processes at once, 40 decisions each and one photo both keep changing: every decision is kept.
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(path), prefix, 40)) for prefix in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    labels = LabelStore(path).labels()
    assert all(f"{prefix}{k}.jpg" in labels for prefix in "ab" for k in range(40))
    assert labels["shared.jpg"]["label"] in ("open", "closed") and len(labels) == 83


def test_a_hand_edit_is_read_when_the_file_changes(tmp_path):
    path = tmp_path / "r.labels.json"
    store = LabelStore(path)
    store.put("a.jpg", {"label": "open"})
    assert store.labels()["a.jpg"]["label"] == "open"
    data = json.loads(path.read_text())
    data["labels"]["a.jpg"] = "closed"  # by hand, the short form
    data["labels"]["b.jpg"] = {"label": "none"}
    path.write_text(json.dumps(data))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # an editor a second later
    assert {p: e["label"] for p, e in store.labels().items()} == {"a.jpg": "closed", "b.jpg": "none"}
    store.put("c.jpg", {"label": "open"})  # the next write keeps the hand edit
    assert {p: e["label"] for p, e in LabelStore(path).labels().items()} == {
        "a.jpg": "closed",
        "b.jpg": "none",
        "c.jpg": "open",
    }


# ------------------------------------------------------------------ the order
def _rows(tmp_path: Path) -> list[dict]:
    confidences = {"sure1": 0.99, "sure2": 0.97, "sure3": 0.95, "sure4": 0.93, "mid": 0.7, "low": 0.55, "edge": 0.89}
    rows = [
        {"path": _photo(tmp_path / f"{name}.jpg"), "status": "closed", "confidence": c, "tops": []}
        for name, c in confidences.items()
    ]
    rows.append({"path": _photo(tmp_path / "unk.jpg"), "status": "unknown", "confidence": None, "tops": []})
    rows.append({"path": str(tmp_path / "gone.jpg"), "status": "open", "confidence": 0.6, "tops": []})
    rows.append({"path": str(tmp_path / "bad.jpg"), "status": "error", "error": "cannot identify image"})
    rows.append({"path": str(tmp_path / "clip.mp4"), "frame": 3, "status": "open", "confidence": 0.5})
    return rows


def test_unknown_then_least_confident_then_a_sample_of_the_confident(tmp_path):
    items = order(items_from_rows(_rows(tmp_path), tmp_path / "results.jsonl"), sample=0.25)
    names = [Path(i.path).stem for i in items]
    kinds = [i.kind for i in items]
    assert names[:5] == ["unk", "low", "gone", "mid", "edge"]
    assert kinds[:5] == ["unknown", "doubtful", "doubtful", "doubtful", "doubtful"]
    assert kinds[5:] == ["sample", "confident", "confident", "confident", "error"]  # 25% of 4 confident: 1
    assert "clip" not in names  # a clip's frame has no file to label
    assert [Path(i.path).stem for i in items if i.file is None] == ["gone", "bad"]  # kept, shown as missing
    again = order(items_from_rows(_rows(tmp_path), tmp_path / "results.jsonl"), sample=0.25)
    assert [i.path for i in again] == [i.path for i in items]  # the same order on reopening


def test_csv_rows_are_read_by_their_header_and_relative_paths_beside_the_results(tmp_path):
    _photo(tmp_path / "run" / "a.jpg")
    results = tmp_path / "run" / "results.csv"
    results.write_text(
        "path,status,confidence,p_open,error\r\na.jpg,open,0.6100,0.6100,\r\nb.jpg,closed,0.9900,0.0100,\r\n"
    )
    items = review_items(results)
    assert [(i.path, i.status, i.confidence, i.file is not None) for i in items] == [
        ("a.jpg", "open", 0.61, True),
        ("b.jpg", "closed", 0.99, False),
    ]
    (tmp_path / "other.csv").write_text("name,answer\r\nx,y\r\n")
    with pytest.raises(ValueError, match="not the CSV rows"):
        read_rows(tmp_path / "other.csv")


# ------------------------------------------------------------------ export
def test_export_writes_the_folders_train_reads_the_corrected_tops_and_a_held_back_part(tmp_path):
    rows = []
    for k in range(10):
        rows.append(
            {
                "path": _photo(tmp_path / "in" / f"p{k}.jpg"),
                "status": "closed",
                "confidence": 0.6,
                "tops": [{"box": [10, 5, 20, 15], "status": "closed", "confidence": 0.6}],
            }
        )
    rows.append({"path": str(tmp_path / "in" / "gone.jpg"), "status": "open", "confidence": 0.5, "tops": []})
    items = order(items_from_rows(rows, tmp_path / "results.jsonl"))
    labels = {row["path"]: {"label": "open" if k < 4 else "closed"} for k, row in enumerate(rows[:8])}
    labels[rows[8]["path"]] = {"label": "none"}
    labels[rows[9]["path"]] = {"label": "skip"}
    labels[rows[10]["path"]] = {"label": "open"}  # its photo is gone
    labels[rows[0]["path"]] = {"label": "open", "added": [[30, 10, 40, 20]], "removed": [[10, 5, 20, 15]]}
    labels[rows[4]["path"]] = {"label": "closed", "added": [[0, 0, 8, 8]]}
    out = tmp_path / "data"
    done = export(items, labels, out, heldout=0.25)
    assert done.written == {"open": 3, "closed": 3, "none": 1}  # one of 4 open, one of 4 closed held back
    assert sorted(h["label"] for h in done.heldout) == ["closed", "open"]
    assert done.missing == [rows[10]["path"]]
    linked = [(out / label / name).is_symlink() for label in ("open", "closed") for name in os.listdir(out / label)]
    assert linked and all(linked)
    held = json.loads((out / "heldout.json").read_text())
    assert {h["path"] for h in held["photos"]} == {h["path"] for h in done.heldout} and held["fraction"] == 0.25
    exported = {str(Path(e.path).relative_to(out)) for e in scan_image_folder(out)}
    assert not {os.path.join(h["label"], Path(h["path"]).name) for h in done.heldout} & exported  # never trained on

    tops = json.loads((out / "tops.json").read_text())["tops"]
    expected = {}
    if rows[0]["path"] not in {h["path"] for h in done.heldout}:
        expected["open/p0.jpg"] = [[30.0, 10.0, 40.0, 20.0]]  # the wrong box removed, the missed top added
    if rows[4]["path"] not in {h["path"] for h in done.heldout}:
        expected["closed/p4.jpg"] = [[10.0, 5.0, 20.0, 15.0], [0.0, 0.0, 8.0, 8.0]]
    assert tops == expected
    # `train` reads them keyed by the paths it scans.
    scanned = {e.path for e in scan_image_folder(out)}
    assert set(corrected_tops([out])) == {os.path.normpath(str(out / name)) for name in expected}
    assert set(corrected_tops([out])) <= {os.path.normpath(p) for p in scanned}

    # Again, as copies, after a label changed: no stale photo stays in the old folder.
    labels[rows[1]["path"]] = {"label": "closed"}
    again = export(items, labels, out, copy=True, heldout=0)
    assert again.written == {"open": 3, "closed": 5, "none": 1}
    assert not any((out / label / n).is_symlink() for label in ("open", "closed") for n in os.listdir(out / label))
    assert not (out / "open" / "p1.jpg").exists() and (out / "closed" / "p1.jpg").exists()


# ------------------------------------------------------------------ comparison and the model check
def _answers(status: str, confidence: float):
    return SimpleNamespace(
        classify_paths=lambda paths: [SimpleNamespace(status=status, confidence=confidence) for _ in paths]
    )


def test_results_from_another_model_are_said_and_the_comparison_counts_right_answers(tmp_path):
    rows = [{"path": _photo(tmp_path / f"{k}.jpg"), "status": "closed", "confidence": 0.8} for k in range(4)]
    items = order(items_from_rows(rows, tmp_path / "r.jsonl"))
    assert check_model(items, _answers("closed", 0.805), "m 1") is None  # within rounding
    warning = check_model(items, _answers("open", 0.7), "m 2")
    assert warning and "not made by the loaded model (m 2)" in warning and "3 of 3" in warning
    labels = {row["path"]: {"label": label} for row, label in zip(rows, ("open", "closed", "open"), strict=False)}
    new = {row["path"]: {"status": "open", "confidence": 0.9} for row in rows[:3]}
    counts = summary(items, labels, new, heldout=[rows[2]["path"]])
    assert counts == {
        "reviewed": {"photos": 2, "old_right": 1, "new_right": 1},
        "heldout": {"photos": 1, "old_right": 0, "new_right": 1},
    }


# ------------------------------------------------------------------ the page's API
def _app(tmp_path, rows, classifier=None):
    from bottlecheck.review.blueprint import ReviewSession, create_review_app

    results = _results(tmp_path, rows)
    session = ReviewSession.open(results, classifier, "test 1")
    return create_review_app(session).test_client(), results


def test_the_api_saves_reads_hand_edits_and_shows_missing_photos_and_a_model_mismatch(tmp_path):
    rows = [
        {"path": _photo(tmp_path / "a.jpg", (300, 200)), "status": "closed", "confidence": 0.6, "tops": []},
        {"path": str(tmp_path / "gone.jpg"), "status": "unknown", "confidence": None, "tops": []},
    ]
    client, results = _app(tmp_path, rows, _answers("open", 0.9))
    state = client.get("/review/api/state").get_json()
    assert [(i["path"], i["missing"]) for i in state["items"]] == [(rows[1]["path"], True), (rows[0]["path"], False)]
    assert state["items"][1]["size"] == [300, 200]
    assert "not made by the loaded model (test 1)" in state["warning"]  # said, not hidden
    page = client.get("/review/").get_data(as_text=True)
    for key in ("<kbd>o</kbd> open", "<kbd>c</kbd> closed", "<kbd>n</kbd> no top visible", "<kbd>u</kbd> undo"):
        assert key in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
    assert client.get("/review/api/photo/0").status_code == 404  # the missing photo
    photo = client.get("/review/api/photo/1")
    assert photo.status_code == 200 and Image.open(__import__("io").BytesIO(photo.data)).size == (300, 200)

    saved = client.put("/review/api/label", json={"path": rows[0]["path"], "entry": {"label": "open"}})
    assert saved.status_code == 200 and saved.get_json()["labels"][rows[0]["path"]]["label"] == "open"
    elsewhere = {"path": "elsewhere.jpg", "entry": {"label": "open"}}
    assert client.put("/review/api/label", json=elsewhere).status_code == 404
    assert client.put("/review/api/label", json={"path": rows[0]["path"], "entry": {"label": "x"}}).status_code == 400
    labels_file = labels_path_for(results)
    data = json.loads(labels_file.read_text())
    data["labels"][rows[0]["path"]]["label"] = "closed"
    labels_file.write_text(json.dumps(data))
    stat = labels_file.stat()
    os.utime(labels_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert client.get("/review/api/labels").get_json()[rows[0]["path"]]["label"] == "closed"


def test_serve_mounts_the_page_behind_the_api_keys(tmp_path, classifier, monkeypatch):
    from bottlecheck.server import create_app

    photo = shutil.copy(ROOT / "examples" / "rendered_open_1.jpg", tmp_path / "a.jpg")
    answer = classifier.classify(str(photo)).as_dict()
    results = _results(tmp_path, [{**answer, "path": str(photo)}])
    monkeypatch.setenv("BOTTLECHECK_REVIEW_RESULTS", str(results))
    client = create_app({"API_KEYS": "s3cret"}, classifier=classifier).test_client()
    assert client.get("/review/").status_code == 200  # the page itself: static, no data
    assert client.get("/review/api/state").status_code == 401
    state = client.get("/review/api/state", headers={"X-API-Key": "s3cret"}).get_json()
    assert [i["path"] for i in state["items"]] == [str(photo)] and state["warning"] is None
    monkeypatch.delenv("BOTTLECHECK_REVIEW_RESULTS")
    assert create_app(classifier=classifier).test_client().get("/review/").status_code == 404  # not asked for
