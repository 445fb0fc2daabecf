"""The evaluation report, opened in Debian's Chromium as a reader would: charts drawn, mistakes shown."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bottlecheck.cli.main import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHROMIUM = "/usr/bin/chromium"


@pytest.mark.server
def test_the_report_page_draws_its_charts_and_the_mistakes(tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is required in CI (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    data = tmp_path / "data"
    for label in ("open", "closed"):
        (data / label).mkdir(parents=True)
        for photo in EXAMPLES.glob(f"rendered_{label}_*.jpg"):
            shutil.copy(photo, data / label / photo.name)
    shutil.copy(EXAMPLES / "rendered_open_1.jpg", data / "closed" / "filed-in-the-wrong-folder.jpg")
    page_path = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["evaluate", str(data), "--report", str(page_path), "-q"])
    assert result.exit_code == 0 and "1 misclassified" in result.output
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(page_path.as_uri())
        sizes = page.eval_on_selector_all("svg", "els => els.map(e => [e.id, e.getBoundingClientRect().width])")
        bins = page.eval_on_selector_all("#reliability rect.bin", "els => els.length")
        cells = page.eval_on_selector_all("#confusion text.count", "els => els.map(e => e.textContent)")
        thumbnails = page.eval_on_selector_all("#mistake-cards img", "els => els.map(e => e.naturalWidth)")
        caption = page.text_content("#mistake-cards figcaption")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert {name for name, width in sizes if width > 100} == {"reliability", "roc", "confusion"}
    assert bins >= 1
    assert cells == ["2", "1", "0", "2"]  # rows true closed/open, columns said closed/open
    assert len(thumbnails) == 1 and thumbnails[0] > 0
    assert "true closed" in caption and "said open" in caption and "filed-in-the-wrong-folder" in caption


def test_evaluate_names_what_it_ignores_and_reports_unknown_answers_in_words(tmp_path):
    """Quick loop, no browser: the warnings, the table and the page's text (issue 20)."""
    import re

    data = tmp_path / "data"
    for folder, names in (
        ("open", ["rendered_open_1.jpg", "rendered_open_2.jpg", "rendered_unknown_1.jpg"]),
        ("closed", ["rendered_closed_1.jpg", "rendered_closed_2.jpg"]),
        ("other", ["rendered_open_1.jpg", "rendered_closed_1.jpg"]),
    ):
        (data / folder).mkdir(parents=True)
        for name in names:
            shutil.copy(EXAMPLES / name, data / folder / name)
    shutil.copy(EXAMPLES / "rendered_open_2.jpg", data / "loose.jpg")
    page_path = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["evaluate", str(data), "--report", str(page_path), "-q"])
    assert result.exit_code == 0, result.output
    assert f"warning: ignoring {data / 'other'}{os.sep} (2 images)" in result.stderr
    assert f"warning: ignoring {data}{os.sep} (1 image)" in result.stderr
    table = result.stdout
    assert "images 4 " in table  # the photos of other/ and the loose one were not counted
    assert "answered unknown: 0 closed, 1 open, 0 none" in table  # rendered_unknown_1 shows no top
    assert "None" not in table and "of 0" not in table  # no none/ folder: nothing to say about it
    page = page_path.read_text(encoding="utf-8")
    assert "0 closed, 1 open, 0 none" in page and "{&#x27;" not in page and "{'" not in page
    for chart in ("reliability", "roc"):
        svg = page[page.index(f'<svg id="{chart}"') :]
        svg = svg[: svg.index("</svg>")]
        x_ticks = re.findall(r'<text class="tick x"[^>]*>([^<]+)</text>', svg)
        y_ticks = re.findall(r'<text class="tick y"[^>]*>([^<]+)</text>', svg)
        assert x_ticks[-1] == "1" and len(x_ticks) >= 3, chart
        assert y_ticks == ["0", "0.5", "1"], chart


def test_the_report_has_a_reliability_diagram_for_each_source(tmp_path):
    """A confidence must mean the same on each source: each gets its own diagram, counting only its photos."""
    import re

    import numpy as np

    from bottlecheck.evaluation.metrics import classification_report, reports_by_source
    from bottlecheck.writers.report import write_html_report

    rows = [
        {"path": f"a{k}.jpg", "status": "open", "confidence": 0.95, "p_open": 0.95, "label": "open", "source": "line-a"}
        for k in range(6)
    ] + [
        {
            "path": f"b{k}.jpg",
            "status": "closed",
            "confidence": 0.65,
            "p_open": 0.35,
            "label": "open",
            "source": "line-b",
        }
        for k in range(3)
    ]
    labels = np.ones(len(rows), dtype=int)
    p_open = np.array([r["p_open"] for r in rows])
    report = classification_report(labels, p_open)
    report["by_source"] = reports_by_source(labels, p_open, [r["source"] for r in rows], 0.5)
    page = tmp_path / "report.html"
    write_html_report(page, report, rows)
    text = page.read_text()
    for source, count, accuracy in (("line-a", 6, "1.00"), ("line-b", 3, "0.00")):
        svg = re.search(rf'<svg id="reliability-{source}".*?</svg>', text, re.S)
        assert svg, source
        assert re.findall(r"accuracy ([0-9.]+) on (\d+)", svg.group(0)) == [(accuracy, str(count))]


def test_a_mistake_card_counts_its_tops_in_words_and_the_table_gives_auc_at_four_decimals(tmp_path):
    from bottlecheck.evaluation.evaluate import format_table
    from bottlecheck.evaluation.metrics import classification_report
    from bottlecheck.writers.report import _card

    row = {"label": "open", "status": "closed", "confidence": 0.7, "p_open": 0.3, "path": str(tmp_path / "x.jpg")}
    assert "1 top, 0 open" in _card({**row, "bottles": 1, "open_tops": 0})
    assert "2 tops, 1 open" in _card({**row, "bottles": 2, "open_tops": 1})
    report = classification_report([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
    assert report["roc_auc"] == 0.75
    assert "ROC AUC 0.7500  ECE" in format_table(report)
