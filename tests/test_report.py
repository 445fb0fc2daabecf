"""The evaluation report, opened in Debian's Chromium as a reader would: charts drawn, mistakes shown."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bottlecheck.cli import main

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
