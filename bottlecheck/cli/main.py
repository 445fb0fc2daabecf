"""The ``bottlecheck`` command line: parse, call the library, format. Nothing else lives here."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from bottlecheck import __version__
from bottlecheck.cli.options import (
    EXIT_NOTHING_FOUND,
    EXIT_OK,
    EXIT_SOME_ERRORS,
    batch_size_option,
    engine_option,
    load_classifier,
    model_option,
    refuse_missing_folder,
    say,
    threshold_option,
    workers_option,
)
from bottlecheck.cli.review import review
from bottlecheck.cli.train import evaluate, train
from bottlecheck.cli.watch import watch
from bottlecheck.labels import UNKNOWN
from bottlecheck.server.config import DEFAULTS as SERVER_DEFAULTS
from bottlecheck.writers.rows import FORMATS, resolve_format, with_frames

if TYPE_CHECKING:
    from bottlecheck.classifier import Classifier
    from bottlecheck.runs.classify import ClassifyRun
    from bottlecheck.sources.discovery import Inputs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bottlecheck")
def main() -> None:
    """Tell from a photo whether a beer bottle is open (cap off) or closed (cap on)."""


main.add_command(train)
main.add_command(evaluate)
main.add_command(review)
main.add_command(watch)


def plural(count: int, word: str) -> str:
    """``1 image``, ``2 images``, ``2 stretches``."""
    return f"{count} {word}{'' if count == 1 else 'es' if word.endswith(('s', 'ch')) else 's'}"


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
@batch_size_option
@workers_option
@threshold_option
@model_option
@engine_option
@click.option(
    "--resume",
    is_flag=True,
    help="With -o: skip inputs already answered in FILE, retry its error rows; FILE ends in input order.",
)
@click.option(
    "--save-annotated",
    "annotated_dir",
    type=click.Path(file_okay=False),
    help="Also write a copy of each photo with its answer drawn on it (a tops model: every top's box) into DIR, "
    "at its path below the folder the inputs share, in its own format.",
)
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    envvar="BOTTLECHECK_RAY",
    help="Run on Ray Data: local (in-process), auto (RAY_ADDRESS or a running cluster), ray://host:10001. "
    "Same rows and order; needs bottlecheck[ray].",
)
@click.option(
    "--every",
    type=click.IntRange(1),
    metavar="N",
    help="Video: classify every N-th frame (instead of --fps).",
)
@click.option(
    "--fps",
    type=click.FloatRange(0, min_open=True),
    metavar="F",
    help="Video: classify F frames per second of video, by presentation time [default: 2].",
)
@click.option(
    "--events",
    "events_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Video: write each stretch where an open top is seen (start, end, peak confidence) to FILE as JSONL.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def classify(
    paths: tuple[str, ...],
    fmt: str | None,
    output: str | None,
    batch_size: int | None,
    workers: int,
    threshold: float | None,
    model_path: str | None,
    engine: str,
    resume: bool,
    annotated_dir: str | None,
    ray_address: str | None,
    every: int | None,
    fps: float | None,
    events_path: str | None,
    quiet: bool,
) -> None:
    """Classify images and video: files, directories (recursive), globs, or - for paths on stdin.

    A video clip (mp4, mov, mkv, avi, webm, ...) gives one row per sampled frame (2 a second
    unless --fps or --every says otherwise) with its frame number and time. A stream
    (rtsp://, http://, /dev/video0) is read until Ctrl-C or SIGTERM, reconnecting when it drops.

    \b
    Examples:
      bottlecheck classify photo.jpg
      bottlecheck classify frames/ -o results.csv
      find /mnt/line -name '*.png' | bottlecheck classify - -f jsonl > out.jsonl
      bottlecheck classify frames/ -o results.jsonl --resume
      bottlecheck classify /mnt/archive/ -o results.jsonl --ray auto
      bottlecheck classify line.mp4 --fps 5 -o frames.csv --events open.jsonl
      bottlecheck classify rtsp://camera/stream -o live.jsonl

    Exit status: 0 every input classified, 1 some inputs had errors (their rows
    say why), 2 usage error, 3 nothing found to classify (empty directory, a glob
    that matches nothing). An "unknown" answer (a tops model: no bottle top visible)
    is an answer, not an error.
    """
    from tqdm import tqdm

    from bottlecheck.sources.video import Sampling

    fmt = _classify_format(fmt, output, resume)
    if every and fps:
        raise click.UsageError("--every and --fps both say which frames to take: give one")
    for path, option in ((output, "-o/--output"), (events_path, "--events")):
        refuse_missing_folder(path, option)
    given = _find_inputs(paths, own=[path for path in (output, events_path, annotated_dir) if path])
    if given.videos and ray_address:
        raise click.UsageError("--ray classifies photos; classify video without it")
    if events_path and not given.videos:
        raise click.UsageError("--events needs a video clip or stream among PATHS")

    classifier = load_classifier(model_path, engine, threshold)
    ray_failures = _connect_ray(ray_address)
    run = _open_run(output, fmt, classifier, given, resume, events_path, annotated_dir)
    todo = run.todo()
    show_progress = not quiet and sys.stderr.isatty()
    total, unit = (None, "frame") if given.videos else (len(todo), "img")
    with run, tqdm(total=total, unit=unit, disable=not show_progress, file=sys.stderr, dynamic_ncols=True) as bar:
        if ray_address:
            from bottlecheck.runs.ray_batch import classify_on_ray

            predictions = classify_on_ray(todo, classifier, engine, batch_size=batch_size, workers=workers)
        else:
            predictions = run.predictions(classifier, todo, Sampling(every, fps), batch_size, workers)
        try:
            for prediction in predictions:
                run.write(prediction)
                bar.update(1)
        except ray_failures as exc:  # the cluster failed mid-run: the rows so far are kept
            kept = f"; {output} keeps the rows so far, --resume continues" if output else ""
            raise click.ClickException(f"{exc}{kept}") from None
    if not quiet:
        _summarize(run, todo, resume, UNKNOWN in classifier.statuses)
    # Earlier error rows were retried, so the new errors are all the output holds.
    sys.exit(EXIT_SOME_ERRORS if run.counts["error"] else EXIT_OK)


def _classify_format(fmt: str | None, output: str | None, resume: bool) -> str:
    """The output format, from -f, else -o's extension, else the terminal; a usage error where --resume cannot be."""
    if resume and not output:
        raise click.UsageError("--resume needs -o/--output: it continues that file")
    try:
        fmt = resolve_format(fmt, output, interactive=sys.stdout.isatty())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if resume and fmt == "table":
        raise click.UsageError("--resume works with csv, json and jsonl output")
    return fmt


def _find_inputs(paths: tuple[str, ...], own: list[str]) -> Inputs:
    """PATHS as one set of inputs, never ``own`` (what this run writes); says what was left out, exits 3 on none."""
    from bottlecheck.sources import video
    from bottlecheck.sources.discovery import find_inputs

    def nothing_in(argument: str, reason: str) -> None:
        say(f"warning: {reason}: {argument}")

    given = find_inputs(paths, stdin=sys.stdin, on_empty=nothing_in, exclude=own)
    if given.skipped_clips:
        example = given.skipped_clips[0]
        say(f"warning: skipped {len(given.skipped_clips)} video clip(s), e.g. {example}: {video.INSTALL_HINT}")
    if not given.paths:
        say("nothing to classify: no image files found in " + " ".join(paths))
        sys.exit(EXIT_NOTHING_FOUND)
    if given.videos and not video.available():
        raise click.UsageError(f"{video.INSTALL_HINT} (to read {sorted(given.videos)[0]})")
    return given


def _open_run(
    output: str | None,
    fmt: str,
    classifier: Classifier,
    given: Inputs,
    resume: bool,
    events_path: str | None,
    annotated_dir: str | None,
) -> ClassifyRun:
    """The run's output, stretches and copies, opened before the first row; a live run for streams."""
    from bottlecheck.runs.classify import ClassifyRun

    fields = with_frames(classifier.columns) if given.videos else classifier.columns
    try:
        return ClassifyRun(
            output, fmt, fields, classifier.nested_columns, inputs=given, resume=resume, events_path=events_path,
            annotated_dir=annotated_dir, live=bool(given.streams), say=say,
        )  # fmt: skip
    except ValueError as exc:  # resuming a file that holds something else: never overwrite it
        raise click.UsageError(str(exc)) from None


def _connect_ray(address: str | None) -> tuple[type[Exception], ...]:
    """Connect to Ray for ``--ray`` (a usage error when it cannot); the errors that mean the cluster failed mid-run."""
    if not address:
        return ()
    from bottlecheck.runs.ray_batch import RayUnavailable, connect

    try:
        connect(address)
    except RayUnavailable as exc:
        raise click.UsageError(str(exc)) from None
    return (RayUnavailable,)


def _summarize(run: ClassifyRun, todo: list[str], resume: bool, says_unknown: bool) -> None:
    """The closing lines on stderr: the answers by status (photos, and frames of clips or streams) and the stretches."""
    counts, videos, streams = run.counts, run.inputs.videos, run.inputs.streams
    skipped = f", {len(run.inputs.paths) - len(todo)} already done" if resume else ""
    unknown = f", {counts['unknown']} unknown" if says_unknown else ""
    answered = plural(len(todo), "image")
    if videos:
        photos = len([path for path in todo if path not in videos])
        sources = plural(len(videos), "stream" if videos == streams else "clip")
        answered = f"{plural(run.frames, 'frame')} of {sources}"
        if photos:
            answered = f"{plural(photos, 'image')} and {answered}"
    say(
        f"{answered}: {counts['open']} open, {counts['closed']} closed{unknown}, "
        f"{plural(counts['error'], 'error')}{skipped}"
    )
    if videos and not streams:
        say(f"{plural(len(run.found), 'stretch')} with an open top" + (":" if run.found else ""))
        for event in run.found:
            say(f"  {event.describe()}")


@main.command()
@model_option
@engine_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(model_path: str | None, engine: str, as_json: bool) -> None:
    """Show the package, the model and the engine that would run it."""
    from bottlecheck.writers.model_card import info_lines, model_facts

    classifier = load_classifier(model_path, engine)
    facts = model_facts(classifier)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    for line in info_lines(facts, classifier.artifact.stages):
        click.echo(line)


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
@click.option(
    "--rate-limit",
    envvar="BOTTLECHECK_RATE_LIMIT",
    default=SERVER_DEFAULTS["RATE_LIMIT"],
    show_default=True,
    help="Per API key, or per client address without keys; off leaves limits to the ingress.",
)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(0.01),
    envvar="BOTTLECHECK_MAX_UPLOAD_MB",
    default=SERVER_DEFAULTS["MAX_UPLOAD_MB"],
    show_default=True,
    help="Request body limit in MB (413 above).",
)
@click.option(
    "--timeout",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Seconds before a stuck worker is restarted.",
)
def serve(
    host: str,
    port: int,
    workers: int,
    threads: int,
    model_path: str | None,
    engine: str,
    api_keys_file: str | None,
    rate_limit: str,
    max_upload_mb: float,
    timeout: int,
) -> None:
    """Serve the HTTP API (POST /classify) under gunicorn.

    Every setting also reads from a BOTTLECHECK_* environment variable; see
    docs/api.md for the full list (batching, queue, cache, Redis).
    """
    from bottlecheck.server.gunicorn_app import PortTaken
    from bottlecheck.server.gunicorn_app import serve as run_server

    app_config: dict[str, Any] = {"MODEL": model_path, "ENGINE": engine}
    for key, value in (("API_KEYS_FILE", api_keys_file), ("RATE_LIMIT", rate_limit), ("MAX_UPLOAD_MB", max_upload_mb)):
        if value is not None:
            app_config[key] = value
    try:
        run_server(host, port, workers, threads, app_config, timeout=timeout)
    except PortTaken as exc:
        raise click.UsageError(str(exc)) from None
