"""Options and helpers that several ``bottlecheck`` commands share (as sqlite-utils shares ``output_options``).

Defined once so that every command spells, documents and reads them from the
environment the same way.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from bottlecheck.artifact import ModelError
from bottlecheck.engines import ENGINE_CHOICES

if TYPE_CHECKING:
    from bottlecheck.classifier import Classifier

EXIT_OK, EXIT_SOME_ERRORS, EXIT_USAGE, EXIT_NOTHING_FOUND = 0, 1, 2, 3

model_option = click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=True, dir_okay=True),
    envvar="BOTTLECHECK_MODEL",
    help="Model directory (default: the bundled model; env BOTTLECHECK_MODEL).",
)
engine_option = click.option(
    "--engine",
    type=click.Choice(ENGINE_CHOICES),
    default="auto",
    show_default=True,
    envvar="BOTTLECHECK_ENGINE",
    help="Inference runtime; auto prefers LiteRT (env BOTTLECHECK_ENGINE).",
)
threshold_option = click.option(
    "-t",
    "--threshold",
    type=click.FloatRange(0, 1),
    help="p_open at or above which a top (a one-stage model: the photo) is open "
    "[default: the model's own, from its metadata; 0.5 for the bundled model].",
)
batch_size_option = click.option(
    "-b",
    "--batch-size",
    type=click.IntRange(1, 1024),
    help="Images per model call [default: the engine's best: 4 for LiteRT, 32 for TensorFlow].",
)
workers_option = click.option(
    "-w",
    "--workers",
    type=click.IntRange(1, 64),
    help="Threads, each decoding a batch and running its own copy of the model [default: one per CPU].",
)


def load_classifier(
    model_path: str | None, engine: str, threshold: float | None = None, threads: int | None = None
) -> Classifier:
    """Load the model once for a command; a wrong ``--model`` or a missing runtime is a usage error (exit 2)."""
    from bottlecheck.classifier import Classifier

    try:
        return Classifier.load(model_path, engine=engine, threshold=threshold, threads=threads)
    except ModelError as exc:
        raise click.UsageError(str(exc)) from None


def say(line: str) -> None:
    """A line for the person at the terminal: stderr, never mixed into the rows on stdout."""
    click.echo(line, err=True)


def refuse_missing_folder(path: str | None, option: str) -> None:
    """A usage error, before any work, when ``path`` would be written into a folder that does not exist."""
    if path and path != "-":
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise click.UsageError(f"{option} {path}: folder {folder} does not exist (create it first)")
