"""The reference pages in docs/ build as a site with MkDocs, warnings as errors (mkdocs.yml)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _require_mkdocs() -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is required in CI (it is in the test extra: pip install '.[test]')")
        pytest.skip("needs mkdocs (pip install '.[test]')")


def test_the_docs_build_with_no_warning(tmp_path):
    """``mkdocs build --strict``: a broken link or anchor, a page left out of the nav, a bad config fails."""
    _require_mkdocs()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-3000:]
    for page in ("cli", "api", "deploy", "training", "review"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page


def test_every_docs_page_is_in_the_nav():
    """A page missing from mkdocs.yml's nav would build but no reader would find it from the menu."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs"
    listed = {next(iter(entry.values())) for entry in config["nav"]}
    assert listed == {path.name for path in (ROOT / "docs").glob("*.md")}
