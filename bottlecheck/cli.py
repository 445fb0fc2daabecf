"""The ``bottlecheck`` command line: parse, call the library, format. Nothing else lives here."""

from __future__ import annotations

import json
import sys

import click

from bottlecheck import __version__
from bottlecheck.artifact import ModelError
from bottlecheck.engines import ENGINE_CHOICES
from bottlecheck.outputs import FORMATS, format_for_path, make_writer, open_output

EXIT_OK, EXIT_SOME_ERRORS, EXIT_USAGE = 0, 1, 2

model_option = click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=True, dir_okay=True),
    envvar="BOTTLECHECK_MODEL",
    help="Model directory (default: the bundled model).",
)
engine_option = click.option(
    "--engine",
    type=click.Choice(ENGINE_CHOICES),
    default="auto",
    show_default=True,
    envvar="BOTTLECHECK_ENGINE",
    help="Inference runtime; auto prefers LiteRT.",
)


def _load_classifier(model_path, engine, threshold=None, threads=None):
    from bottlecheck.classifier import Classifier

    try:
        return Classifier.load(model_path, engine=engine, threshold=threshold, threads=threads)
    except ModelError as exc:  # a wrong --model or a missing runtime: the caller's to fix, exit 2
        raise click.UsageError(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bottlecheck")
def main() -> None:
    """Tell from a photo whether a beer bottle is open (cap off) or closed (cap on)."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Output format [default: from -o's extension, else table on a terminal, jsonl in a pipe].",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write rows to FILE.")
@click.option(
    "-b",
    "--batch-size",
    type=click.IntRange(1, 1024),
    help="Images per model call [default: the engine's best: 8 for LiteRT, 32 for TensorFlow].",
)
@click.option("-w", "--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Decoding threads.")
@click.option(
    "-t",
    "--threshold",
    type=click.FloatRange(0, 1),
    help="p_open at or above which a bottle is open [default: the model's, chosen on validation].",
)
@model_option
@engine_option
@click.option("--resume", is_flag=True, help="With -o: skip inputs already in FILE and append the rest.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def classify(paths, fmt, output, batch_size, workers, threshold, model_path, engine, resume, quiet):
    """Classify images: files, directories (recursive), globs, or - for paths on stdin.

    \b
    Examples:
      bottlecheck classify photo.jpg
      bottlecheck classify frames/ -o results.csv
      find /mnt/line -name '*.png' | bottlecheck classify - -f jsonl > out.jsonl
      bottlecheck classify frames/ -o results.jsonl --resume

    Exit status: 0 all classified, 1 some inputs had errors (their rows say
    why), 2 usage error.
    """
    from tqdm import tqdm

    from bottlecheck.discovery import expand_inputs

    if resume and not output:
        raise click.UsageError("--resume needs -o/--output: it continues that file")
    if fmt is None:
        fmt = (format_for_path(output) if output else None) or (
            "table" if sys.stdout.isatty() and not output else "jsonl"
        )
    if resume and fmt == "table":
        raise click.UsageError("--resume works with csv, json and jsonl output")
    inputs = list(dict.fromkeys(expand_inputs(paths, stdin=sys.stdin)))

    classifier = _load_classifier(model_path, engine, threshold)
    if output:
        writer, done, finish = open_output(output, fmt, resume)
    else:
        writer, done, finish = make_writer(fmt, sys.stdout), set(), None
    todo = [path for path in inputs if path not in done]

    counts = {"open": 0, "closed": 0, "error": 0}
    show_progress = not quiet and sys.stderr.isatty()
    with tqdm(total=len(todo), unit="img", disable=not show_progress, file=sys.stderr, dynamic_ncols=True) as bar:
        try:
            for prediction in classifier.classify_paths(todo, batch_size=batch_size, workers=workers):
                writer.write(prediction.as_dict())
                counts[prediction.status] += 1
                bar.update(1)
        finally:
            finish() if finish else writer.close()
    if not quiet:
        skipped = f", {len(inputs) - len(todo)} already done" if resume else ""
        click.echo(
            f"{len(todo)} images: {counts['open']} open, {counts['closed']} closed, {counts['error']} errors{skipped}",
            err=True,
        )
    sys.exit(EXIT_SOME_ERRORS if counts["error"] else EXIT_OK)


@main.command()
@model_option
@engine_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(model_path, engine, as_json):
    """Show the package, the model and the engine that would run it."""
    classifier = _load_classifier(model_path, engine)
    artifact = classifier.artifact
    facts = {
        "bottlecheck": __version__,
        "model": artifact.name,
        "model_version": artifact.version,
        "model_dir": str(artifact.directory),
        "sha256": artifact.checksum,
        "engine": classifier.engine.name,
        "input_size": artifact.input_size,
        "labels": artifact.labels,
        "threshold": artifact.threshold,
        "metrics": artifact.metrics,
    }
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    for key, value in facts.items():
        if key == "metrics":
            continue
        click.echo(f"{key + ':':<15} {', '.join(value) if isinstance(value, list) else value}")
    click.echo("metrics:")
    for name, value in artifact.metrics.items():
        if isinstance(value, dict) and "accuracy" in value:
            click.echo(
                f"  {name}: accuracy {value['accuracy']}, ROC AUC {value.get('roc_auc')}, "
                f"ECE {value.get('ece')}, {value.get('count')} images"
            )
        elif isinstance(value, dict):  # grouped, e.g. validation by source
            for group, sub in value.items():
                if isinstance(sub, dict) and "accuracy" in sub:
                    click.echo(f"  {name}.{group}: accuracy {sub['accuracy']}, {sub.get('count')} images")


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="BOTTLECHECK_HOST",
    help="Address to listen on (0.0.0.0 for all).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True, envvar="BOTTLECHECK_PORT")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    envvar="BOTTLECHECK_WORKERS",
    help="Processes, each with its own copy of the model.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    envvar="BOTTLECHECK_THREADS",
    help="Request threads per worker; their images are batched together.",
)
@model_option
@engine_option
@click.option(
    "--api-keys-file",
    type=click.Path(exists=True, dir_okay=False),
    envvar="BOTTLECHECK_API_KEYS_FILE",
    help="File of API keys, one per line (or BOTTLECHECK_API_KEYS=k1,k2).",
)
@click.option("--rate-limit", envvar="BOTTLECHECK_RATE_LIMIT", help="Per key or client, e.g. '600/minute;30/second'.")
@click.option("--max-upload-mb", type=click.FloatRange(0.01), envvar="BOTTLECHECK_MAX_UPLOAD_MB")
@click.option(
    "--timeout",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Seconds before a stuck worker is restarted.",
)
def serve(host, port, workers, threads, model_path, engine, api_keys_file, rate_limit, max_upload_mb, timeout):
    """Serve the HTTP API (POST /classify) under gunicorn.

    Every setting also reads from a BOTTLECHECK_* environment variable; see the
    README for the full list (batching, queue, cache, Redis).
    """
    from bottlecheck.server.gunicorn_app import serve as run_server

    app_config = {"MODEL": model_path, "ENGINE": engine}
    for key, value in (("API_KEYS_FILE", api_keys_file), ("RATE_LIMIT", rate_limit), ("MAX_UPLOAD_MB", max_upload_mb)):
        if value is not None:
            app_config[key] = value
    run_server(host, port, workers, threads, app_config, timeout=timeout)


from bottlecheck.cli_train import evaluate, train  # noqa: E402  (they import TensorFlow only when run)

main.add_command(train)
main.add_command(evaluate)
