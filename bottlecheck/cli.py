"""The ``bottlecheck`` command line: parse, call the library, format. Nothing else lives here."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import click

from bottlecheck import __version__
from bottlecheck.cli_options import (
    EXIT_NOTHING_FOUND,
    EXIT_OK,
    EXIT_SOME_ERRORS,
    batch_size_option,
    engine_option,
    load_classifier,
    model_option,
    threshold_option,
    workers_option,
)
from bottlecheck.cli_review import review
from bottlecheck.cli_train import evaluate, train
from bottlecheck.labels import UNKNOWN
from bottlecheck.outputs import FORMATS, open_sink, resolve_format, with_frames
from bottlecheck.server.config import DEFAULTS as SERVER_DEFAULTS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bottlecheck")
def main() -> None:
    """Tell from a photo whether a beer bottle is open (cap off) or closed (cap on)."""


main.add_command(train)
main.add_command(evaluate)
main.add_command(review)


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
    help="Also write a copy of each photo with its answer drawn on it (model 2: every top's box) into DIR, "
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
    that matches nothing). An "unknown" answer (model 2: no bottle top visible)
    is an answer, not an error.
    """
    from tqdm import tqdm

    from bottlecheck.discovery import find_inputs

    if resume and not output:
        raise click.UsageError("--resume needs -o/--output: it continues that file")
    try:
        fmt = resolve_format(fmt, output, interactive=sys.stdout.isatty())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if resume and fmt == "table":
        raise click.UsageError("--resume works with csv, json and jsonl output")

    def nothing_in(argument: str, reason: str) -> None:
        click.echo(f"warning: {reason}: {argument}", err=True)

    from bottlecheck import video

    if every and fps:
        raise click.UsageError("--every and --fps both say which frames to take: give one")
    for path, option in ((output, "-o/--output"), (events_path, "--events")):
        _refuse_missing_folder(path, option)
    own = [path for path in (output, events_path, annotated_dir) if path]  # never classify what this run writes
    given = find_inputs(paths, stdin=sys.stdin, on_empty=nothing_in, exclude=own)
    inputs = given.paths
    if given.skipped_clips:
        example = given.skipped_clips[0]
        click.echo(
            f"warning: skipped {len(given.skipped_clips)} video clip(s), e.g. {example}: {video.INSTALL_HINT}",
            err=True,
        )
    if not inputs:
        click.echo("nothing to classify: no image files found in " + " ".join(paths), err=True)
        sys.exit(EXIT_NOTHING_FOUND)
    clips, streams = given.videos, given.streams
    if clips and not video.available():
        raise click.UsageError(f"{video.INSTALL_HINT} (to read {sorted(clips)[0]})")
    if clips and ray_address:
        raise click.UsageError("--ray classifies photos; classify video without it")
    if events_path and not clips:
        raise click.UsageError("--events needs a video clip or stream among PATHS")

    classifier = load_classifier(model_path, engine, threshold)
    ray_failures: tuple[type[Exception], ...] = ()
    if ray_address:
        from bottlecheck.ray_batch import RayUnavailable, connect

        try:
            connect(ray_address)
        except RayUnavailable as exc:
            raise click.UsageError(str(exc)) from None
        ray_failures = (RayUnavailable,)
    counts = {"open": 0, "closed": 0, "unknown": 0, "error": 0}
    with contextlib.ExitStack() as stack:
        try:
            fields = with_frames(classifier.columns) if clips else classifier.columns
            sink = stack.enter_context(
                open_sink(output, fmt, resume, fields=fields, nested=classifier.nested_columns, order=inputs)
            )
        except ValueError as exc:  # resuming a file that holds something else: never overwrite it
            raise click.UsageError(str(exc)) from None
        # A clip is decoded again on --resume: its rows may stop anywhere; frames answered are skipped.
        todo = [path for path in inputs if path not in sink.done or path in clips]
        sampling = video.Sampling(every, fps)
        events = VideoEvents(events_path, sink.previous if resume else [], stack, live=bool(streams))
        if streams:
            stack.enter_context(_sigterm_stops())

        def say(line: str) -> None:
            click.echo(line, err=True)

        items = given.items(todo, sampling, skip=lambda path: sink.done_frames.get(path, ()), say=say)
        show_progress = not quiet and sys.stderr.isatty()
        total = None if clips else len(todo)
        unit = "frame" if clips else "img"
        with tqdm(total=total, unit=unit, disable=not show_progress, file=sys.stderr, dynamic_ncols=True) as bar:
            copies = None
            if annotated_dir:
                from bottlecheck.annotate import AnnotatedCopies

                copies = AnnotatedCopies(annotated_dir, inputs)
            if ray_address:
                from bottlecheck.ray_batch import classify_on_ray

                predictions = classify_on_ray(todo, classifier, engine, batch_size=batch_size, workers=workers)
            elif streams:  # live: a row as soon as its frame is classified, not a batch later
                predictions = classifier.classify_paths(
                    items, batch_size=batch_size or 1, workers=workers, prefetch_batches=1
                )
            else:
                predictions = classifier.classify_paths(items, batch_size=batch_size, workers=workers)
            frames = 0
            clip_copies = AnnotatedClips(copies, sink.previous) if copies is not None and clips else None
            try:
                for prediction in predictions:
                    row = prediction.as_dict()
                    sink.write(row)
                    if clip_copies is not None and prediction.path in clips and prediction.path not in streams:
                        clip_copies.add(row)
                    elif copies is not None and prediction.path not in clips:
                        copies.save(prediction.path, prediction)
                    counts[prediction.status] += 1
                    frames += prediction.frame is not None
                    events.feed(row)
                    bar.update(1)
            except ray_failures as exc:  # the cluster failed mid-run: the rows so far are kept
                kept = f"; {output} keeps the rows so far, --resume continues" if output else ""
                raise click.ClickException(f"{exc}{kept}") from None
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a stream's run ends here, its rows complete
                if not streams:
                    raise
                click.echo("stopped", err=True)
            if clip_copies is not None:
                clip_copies.flush()
            found = events.finish(order=inputs)
    if not quiet:
        skipped = f", {len(inputs) - len(todo)} already done" if resume else ""
        unknown = f", {counts['unknown']} unknown" if UNKNOWN in classifier.statuses else ""
        answered = plural(len(todo), "image")
        if clips:
            photos = len([path for path in todo if path not in clips])
            sources = plural(len(clips), "stream" if clips == streams else "clip")
            answered = f"{plural(frames, 'frame')} of {sources}"
            if photos:
                answered = f"{plural(photos, 'image')} and {answered}"
        click.echo(
            f"{answered}: {counts['open']} open, {counts['closed']} closed{unknown}, "
            f"{plural(counts['error'], 'error')}{skipped}",
            err=True,
        )
        if clips and not streams:
            click.echo(f"{plural(len(found), 'stretch')} with an open top" + (":" if found else ""), err=True)
            for event in found:
                click.echo(f"  {event.describe()}", err=True)
    # Earlier error rows were retried, so the new errors are all the output holds.
    sys.exit(EXIT_SOME_ERRORS if counts["error"] else EXIT_OK)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="Append rows to FILE (.jsonl or .csv); its rows are also what a restart skips.",
)
@click.option(
    "-f", "--format", "fmt", type=click.Choice(("csv", "jsonl")), help="Output format [default: from -o's extension]."
)
@click.option(
    "--settle",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="Seconds a file's size and mtime must hold still before it is read (a copy in progress is not).",
)
@click.option(
    "--on-open",
    "webhook_url",
    metavar="URL",
    help="POST a JSON event (path, time, confidence, boxes) to URL for each open photo or open stretch of a clip.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics (rows by status, time of the last open bottle) on this port.",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port (0.0.0.0 for all)."
)
@click.option("--every", type=click.IntRange(1), metavar="N", help="Clips: classify every N-th frame.")
@click.option(
    "--fps",
    type=click.FloatRange(0, min_open=True),
    metavar="F",
    help="Clips: classify F frames per second of video [default: 2].",
)
@workers_option
@threshold_option
@model_option
@engine_option
@click.option(
    "-v", "--verbose", is_flag=True, help="A line on stderr per answer and per open stretch (on a terminal: always)."
)
def watch(
    directory: str,
    output: str,
    fmt: str | None,
    settle: float,
    webhook_url: str | None,
    metrics_port: int | None,
    metrics_host: str,
    every: int | None,
    fps: float | None,
    workers: int | None,
    threshold: float | None,
    model_path: str | None,
    engine: str,
    verbose: bool,
) -> None:
    """Classify each photo or clip that lands in DIRECTORY (and below), once, when it is complete.

    Runs until Ctrl-C or SIGTERM. A file is read once its size and mtime have held still for
    --settle seconds; hidden and partial names (.x.jpg, *.part, *.tmp) wait until they are
    renamed into place. Rows are appended to -o FILE, which is also the state: a restart
    skips the files it names and answers those that landed meanwhile.

    \b
    Examples:
      bottlecheck watch /mnt/line -o line.jsonl
      bottlecheck watch /mnt/line -o line.csv --on-open http://alarm.local/hook --metrics-port 9108
    """
    from bottlecheck import video
    from bottlecheck.watch import Metrics, Watcher, Webhook

    if every and fps:
        raise click.UsageError("--every and --fps both say which frames to take: give one")
    try:
        fmt = resolve_format(fmt, output, interactive=False)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if fmt not in ("csv", "jsonl"):
        raise click.UsageError("watch appends rows: -o must be .jsonl or .csv (or give -f)")
    _refuse_missing_folder(output, "-o/--output")
    if not _watchdog_available():
        raise click.UsageError("watch needs watchdog: pip install 'bottlecheck[video]'")
    if webhook_url and not webhook_url.lower().startswith(("http://", "https://")):
        raise click.UsageError("--on-open takes an http:// or https:// URL")
    classifier = load_classifier(model_path, engine, threshold)
    fields = with_frames(classifier.columns)

    def say(line: str) -> None:
        click.echo(line, err=True)

    metrics = Metrics()
    if metrics_port:
        try:
            metrics.serve(metrics_port, metrics_host)
        except OSError as exc:
            raise click.UsageError(f"--metrics-port {metrics_port}: {exc.strerror or exc}") from None
    with contextlib.ExitStack() as stack:
        try:
            sink = stack.enter_context(
                open_sink(output, fmt, resume=True, fields=fields, nested=classifier.nested_columns)
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        webhook = Webhook(webhook_url, metrics, say) if webhook_url else None
        if webhook is not None:
            stack.callback(webhook.close)
        if not video.available():
            say(f"warning: clips will be error rows: {video.INSTALL_HINT}")
        tell = say if verbose or sys.stderr.isatty() else None  # a person at a terminal sees each answer
        watcher = Watcher(
            directory, classifier, sink, video.Sampling(every, fps), settle, metrics, webhook, say, workers, tell
        )
        stack.enter_context(_sigterm_stops())
        try:
            watcher.run(on_ready=lambda: say(f"watching {directory} ({len(watcher.done)} files already answered)"))
        except KeyboardInterrupt:
            say("stopped")


def _refuse_missing_folder(path: str | None, option: str) -> None:
    """A usage error, before any work, when ``path`` would be written into a folder that does not exist."""
    if path and path != "-":
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise click.UsageError(f"{option} {path}: folder {folder} does not exist (create it first)")


def _watchdog_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("watchdog") is not None


class AnnotatedClips:
    """``--save-annotated`` for clips: each clip, once its rows are in, written again with its answers drawn."""

    def __init__(self, copies: Any, previous: list[dict]):
        self.copies = copies
        self.previous = previous  # a resumed run's earlier rows: their frames are drawn too
        self.path: str | None = None
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        if row["path"] != self.path:
            self.flush()
            self.path = row["path"]
            self.rows = [r for r in self.previous if r.get("path") == self.path]
        self.rows.append(row)

    def flush(self) -> None:
        from bottlecheck.video import annotated_codec, write_annotated_clip

        if self.path is None:
            return
        relative = self.copies.relative(self.path)
        target = self.copies.directory / relative.with_suffix(annotated_codec()[1])
        rows = sorted((r for r in self.rows if r.get("frame") not in (None, "")), key=lambda r: int(r["frame"]))
        write_annotated_clip(self.path, rows, target)
        self.path, self.rows = None, []


class VideoEvents:
    """The open stretches of a run's clips: said at the end, written to ``--events FILE`` (JSONL).

    A clip's stretches are found from all its rows in frame order when the run ends (with
    ``--resume``, the earlier run's rows too); a stream's are written and said as each ends.
    """

    def __init__(self, path: str | None, previous: list[dict], stack: contextlib.ExitStack, live: bool):
        from bottlecheck.events import EventTracker

        self.rows: list[dict] = [_frame_row(row) for row in previous if row.get("frame") not in (None, "")]
        self.live = EventTracker() if live else None
        self.live_events: list[Any] = []
        self.stream = stack.enter_context(open(path, "w", encoding="utf-8")) if path else None

    def feed(self, row: dict) -> None:
        if row.get("frame") is None:
            return
        if self.live is not None:
            event = self.live.feed(row)
            if event is not None:
                self._emit(event)
            return
        self.rows.append(_frame_row(row))

    def _emit(self, event: Any) -> None:
        self.live_events.append(event)
        if self.stream is not None:
            self.stream.write(json.dumps(event.as_dict()) + "\n")
            self.stream.flush()
        click.echo(f"open bottle: {event.describe()}", err=True)

    def finish(self, order: list[str]) -> list[Any]:
        from bottlecheck.events import stretches

        if self.live is not None:
            for event in self.live.finish():
                self._emit(event)
            return self.live_events
        place = {path: index for index, path in enumerate(order)}
        self.rows.sort(key=lambda row: (place.get(row["path"], -1), row["frame"]))
        found = stretches(self.rows)
        found.sort(key=lambda event: (place.get(event.path, -1), event.start_frame))
        if self.stream is not None:
            for event in found:
                self.stream.write(json.dumps(event.as_dict()) + "\n")
            self.stream.flush()
        return found


def _frame_row(row: dict) -> dict:
    """What a stretch needs of a row (also of one read back from CSV, where every cell is text)."""

    def number(value: Any) -> float | None:
        return None if value in (None, "") else float(value)

    return {
        "path": str(row["path"]),
        "frame": int(row["frame"]),
        "time_s": number(row.get("time_s")),
        "status": row.get("status"),
        "confidence": number(row.get("confidence")),
    }


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """While reading a stream, SIGTERM stops the run as Ctrl-C does: the rows so far are written and complete."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (a test's runner): Ctrl-C only
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@main.command()
@model_option
@engine_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(model_path: str | None, engine: str, as_json: bool) -> None:
    """Show the package, the model and the engine that would run it."""
    from bottlecheck.model_card import info_lines, model_facts

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
    help="Per API key, or per client address without keys.",
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
def serve(host, port, workers, threads, model_path, engine, api_keys_file, rate_limit, max_upload_mb, timeout):
    """Serve the HTTP API (POST /classify) under gunicorn.

    Every setting also reads from a BOTTLECHECK_* environment variable; see the
    README for the full list (batching, queue, cache, Redis).
    """
    from bottlecheck.server.gunicorn_app import PortTaken
    from bottlecheck.server.gunicorn_app import serve as run_server

    app_config = {"MODEL": model_path, "ENGINE": engine}
    for key, value in (("API_KEYS_FILE", api_keys_file), ("RATE_LIMIT", rate_limit), ("MAX_UPLOAD_MB", max_upload_mb)):
        if value is not None:
            app_config[key] = value
    try:
        run_server(host, port, workers, threads, app_config, timeout=timeout)
    except PortTaken as exc:
        raise click.UsageError(str(exc)) from None
