"""``bottlecheck watch``: parse its options, open the run and the alarms, and hand the folder to the watcher.

The watching itself (settling, the webhook queue, metrics) is :mod:`bottlecheck.runs.watch`; a row is
written through the same :class:`~bottlecheck.runs.classify.ClassifyRun` as ``classify``'s.
"""

from __future__ import annotations

import sys

import click

from bottlecheck.cli.options import (
    engine_option,
    load_classifier,
    model_option,
    refuse_missing_folder,
    say,
    threshold_option,
    workers_option,
)
from bottlecheck.writers.rows import resolve_format, with_frames


@click.command()
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
    from bottlecheck.runs.classify import ClassifyRun
    from bottlecheck.runs.watch import Watcher, WatchMetrics, Webhook
    from bottlecheck.sources import video

    if every and fps:
        raise click.UsageError("--every and --fps both say which frames to take: give one")
    try:
        fmt = resolve_format(fmt, output, interactive=False)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if fmt not in ("csv", "jsonl"):
        raise click.UsageError("watch appends rows: -o must be .jsonl or .csv (or give -f)")
    refuse_missing_folder(output, "-o/--output")
    if not _watchdog_available():
        raise click.UsageError("watch needs watchdog: pip install 'bottlecheck[video]'")
    if webhook_url and not webhook_url.lower().startswith(("http://", "https://")):
        raise click.UsageError("--on-open takes an http:// or https:// URL")
    classifier = load_classifier(model_path, engine, threshold)
    metrics = WatchMetrics()
    if metrics_port:
        try:
            metrics.serve(metrics_port, metrics_host)
        except OSError as exc:
            raise click.UsageError(f"--metrics-port {metrics_port}: {exc.strerror or exc}") from None
    fields = with_frames(classifier.columns)
    try:  # the output is also the state: appended to, its rows the files a restart skips
        run = ClassifyRun(output, fmt, fields, classifier.nested_columns, resume=True, live=True, say=say)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with run:
        webhook = Webhook(webhook_url, metrics, say) if webhook_url else None
        if webhook is not None:
            run.close_with(webhook.close)
        if not video.available():
            say(f"warning: clips will be error rows: {video.INSTALL_HINT}")
        tell = say if verbose or sys.stderr.isatty() else None  # a person at a terminal sees each answer
        watcher = Watcher(
            directory, classifier, run, video.Sampling(every, fps), settle, metrics, webhook, say, workers, tell
        )
        watcher.run(on_ready=lambda: say(f"watching {directory} ({len(watcher.done)} files already answered)"))


def _watchdog_available() -> bool:
    """Whether watchdog is installed (without importing it: the check is a usage error, before the model loads)."""
    import importlib.util

    return importlib.util.find_spec("watchdog") is not None
