"""The habits the project keeps: every CLI option documented in docs/, lint and types clean."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bottlecheck.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: The reference pages (mkdocs.yml builds them; tests/test_docs_site.py checks the build).
DOCS = {path.name: path.read_text(encoding="utf-8") for path in sorted((ROOT / "docs").glob("*.md"))}


def _options() -> list[tuple[str, str]]:
    found = []
    for name, command in sorted(main.commands.items()):
        for param in command.params:
            if isinstance(param, click.Option):
                longest = max(param.opts, key=len)
                if longest.startswith("--") and longest != "--help":
                    found.append((name, longest))
    return found


def _command_section(command: str) -> tuple[str, str]:
    """The docs page with a ``## `bottlecheck COMMAND`` section, and that section (to the next ``## ``)."""
    heading = f"## `bottlecheck {command}"
    pages = [(name, text) for name, text in DOCS.items() if heading in text]
    assert len(pages) == 1, f"{len(pages)} pages of docs/ have a section for `bottlecheck {command}`"
    name, text = pages[0]
    section = text[text.find(heading) :]
    next_section = re.search(r"\n## ", section[3:])
    return name, section[: next_section.start() + 3] if next_section else section


@pytest.mark.parametrize("command, option", _options())
def test_every_cli_option_is_in_its_commands_docs_section(command, option):
    """As sqlite-utils' test_docs: an option nobody can find in the docs does not exist for users."""
    page, section = _command_section(command)
    assert f"`{option}" in section or f"{option}" in section, f"`bottlecheck {command} {option}` is not in docs/{page}"


def test_the_readmes_first_example_is_what_the_bundled_model_answers(monkeypatch):
    """The output a newcomer sees first (README, top) is the real output on the shipped examples."""
    from click.testing import CliRunner

    monkeypatch.chdir(ROOT)  # the README's command runs in the checkout
    block = README[README.index("$ bottlecheck classify examples/") :].split("```")[0].splitlines()[1:]
    shown_rows, shown_summary = [line.split() for line in block[1:-1]], block[-1]
    result = CliRunner().invoke(main, ["classify", "examples/", "-f", "table"], catch_exceptions=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].split() == block[0].split()  # the header
    assert [line.split() for line in lines[1:-1]] == shown_rows
    assert lines[-1] == shown_summary


def test_the_readme_names_every_command_and_links_the_page_that_documents_it():
    """The README stays short (what a newcomer needs) and points into docs/ for the reference."""
    for name in main.commands:
        assert f"`bottlecheck {name}" in README, name
        page, _ = _command_section(name)
        assert f"](docs/{page})" in README, f"the README does not link docs/{page} (`bottlecheck {name}`)"
    for target in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / target).is_file(), target


@pytest.mark.skipif(shutil.which("ruff") is None and importlib.util.find_spec("ruff") is None, reason="needs ruff")
def test_ruff_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.skipif(shutil.which("ruff") is None and importlib.util.find_spec("ruff") is None, reason="needs ruff")
def test_ruff_format_is_clean():
    """docs/development.md's `ruff format --check .`: every file as the formatter would write it."""
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", str(ROOT)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="needs mypy")
def test_the_package_type_checks():
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", "/tmp/bottlecheck-mypy-cache"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.parametrize("command", [["recipe/quantize_tops.py"], ["-m", "recipe.quantize_tops"]])
def test_a_recipe_script_finds_its_sibling_from_the_repository_root(command):
    """recipe/quantize_tops.py imports recipe/held_out.py: found as a script (benchmarks/run) or as a module."""
    proc = subprocess.run([sys.executable, *command, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "--model" in proc.stdout, proc.stderr[-3000:]


RECIPE_SCRIPTS = sorted(
    ".".join(path.relative_to(ROOT / "recipe").with_suffix("").parts)
    for path in (ROOT / "recipe").rglob("*.py")
    if path.stem != "__init__" and "render" not in path.parts and "def main(" in path.read_text()
)


@pytest.mark.parametrize("name", RECIPE_SCRIPTS)
def test_every_recipe_script_runs_as_a_module_of_the_recipe_package(name):
    """``python -m recipe.NAME --help`` from the root, as recipe/README.md says every script runs."""
    proc = subprocess.run(
        [sys.executable, "-m", f"recipe.{name}", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr[-3000:]


def test_the_recipe_rebuilds_the_shipped_model_and_names_its_version():
    """``recipe/recipe.sh`` builds the model that ships: its version is the bundled model's, and every
    recipe module it runs exists (model 1's recipe lives apart, in ``recipe/model1/``)."""
    script = (ROOT / "recipe" / "recipe.sh").read_text()
    shipped = json.loads((ROOT / "model" / "metadata.json").read_text())["version"]
    assert f"version={shipped}\n" in script
    modules = re.findall(r"python -m (recipe(?:\.\w+)+)", script)
    assert "recipe.train_cap_judge" in modules
    for module in modules:
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module
    assert "recipe.model1" not in script and (ROOT / "recipe" / "model1" / "recipe.sh").is_file()


def test_the_recipe_measures_the_last_look_with_the_shipped_floor_and_how_many_it_reads():
    """``record_tables`` records the last-look report's rows at the model's own ``min_score`` and
    ``max_tops``: a recipe that asks ``last_look`` for other rows stops at its last step (session 25
    found the script without ``--floor-tops``)."""
    script = (ROOT / "recipe" / "recipe.sh").read_text()
    last_look = json.loads((ROOT / "model" / "metadata.json").read_text())["stages"]["judge"]["last_look"]
    (command,) = re.findall(r"python -m recipe\.experiments\.last_look[^\n]*(?:\\\n[^\n]*)*", script)
    assert f"--floor {last_look['min_score']:g} " in command + " "
    assert f"--floor-tops {last_look['max_tops']} " in command + " "


def test_a_release_is_consistent_version_changelog_and_production_image():
    """The package's version has a dated changelog section, and production runs that version's image
    (docs/development.md, "Releasing": the steps that keep the three in step)."""
    import yaml

    from bottlecheck import __version__

    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    dated = rf"^## {re.escape(__version__)} \(\d{{4}}-\d{{2}}-\d{{2}}\)$"
    assert re.search(dated, changelog, re.MULTILINE), __version__
    released = re.findall(r"^## (\d+\.\d+\.\d+) \(", changelog, re.MULTILINE)
    assert released and released[0] == __version__  # the newest release section is this version's
    production = yaml.safe_load((ROOT / "deploy/overlays/production/kustomization.yaml").read_text())
    (image,) = [entry for entry in production["images"] if entry["name"] == "bottlecheck"]
    assert image["newTag"] == __version__
    ray_job = (ROOT / "deploy/ray/rayjob.yaml").read_text()
    assert f"bottlecheck-ray:{__version__}" in ray_job


def test_ci_runs_the_readmes_two_commands_and_stops_when_either_fails():
    """CI runs the README's first two commands verbatim; a failed install must stop it, not skip the tests.

    Under ``set -e`` a failure before the last ``&&`` of a line does not stop a script: the tests
    would be skipped and CI would go on to the smoke test. Each line of ``.ci/run`` is run here with
    ``pip`` failing, as a failed install would.
    """
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = re.findall(r"^(pip install .*)$", README, flags=re.MULTILINE)[:2]
    assert len(commands) == 2
    for command in commands:
        line = next(line for line in ci if line.startswith(command))
        script = f"set -euo pipefail\npip() {{ return 1; }}\n{line}\necho went-on\n"
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
        assert result.returncode != 0 and "went-on" not in result.stdout, line
