"""The ``bottlecheck`` command line: parse, call the library, format. Nothing else lives here."""

from __future__ import annotations

import contextlib
import json
import sys
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
from bottlecheck.cli_train import evaluate, train
from bottlecheck.outputs import FIELDS, FORMATS, TOPS_FIELDS, open_sink, resolve_format
from bottlecheck.server.config import DEFAULTS as SERVER_DEFAULTS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bottlecheck")
def main() -> None:
    """Tell from a photo whether a beer bottle is open (cap off) or closed (cap on)."""


main.add_command(train)
main.add_command(evaluate)


def plural(count: int, word: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


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
    quiet: bool,
) -> None:
    """Classify images: files, directories (recursive), globs, or - for paths on stdin.

    \b
    Examples:
      bottlecheck classify photo.jpg
      bottlecheck classify frames/ -o results.csv
      find /mnt/line -name '*.png' | bottlecheck classify - -f jsonl > out.jsonl
      bottlecheck classify frames/ -o results.jsonl --resume
      bottlecheck classify /mnt/archive/ -o results.jsonl --ray auto

    Exit status: 0 every input classified, 1 some inputs had errors (their rows
    say why), 2 usage error, 3 nothing found to classify (empty directory, a glob
    that matches nothing). An "unknown" answer (model 2: no bottle top visible)
    is an answer, not an error.
    """
    from tqdm import tqdm

    from bottlecheck.discovery import expand_inputs

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

    inputs = list(dict.fromkeys(expand_inputs(paths, stdin=sys.stdin, on_empty=nothing_in)))
    if not inputs:
        click.echo("nothing to classify: no image files found in " + " ".join(paths), err=True)
        sys.exit(EXIT_NOTHING_FOUND)

    classifier = load_classifier(model_path, engine, threshold)
    ray_failures: tuple[type[Exception], ...] = ()
    if ray_address:
        from bottlecheck.ray_batch import RayUnavailable, connect

        try:
            connect(ray_address)
        except RayUnavailable as exc:
            raise click.UsageError(str(exc)) from None
        ray_failures = (RayUnavailable,)
    two_stage = classifier.artifact.is_two_stage
    counts = {"open": 0, "closed": 0, "unknown": 0, "error": 0}
    with contextlib.ExitStack() as stack:
        try:
            fields = TOPS_FIELDS if two_stage else FIELDS
            sink = stack.enter_context(open_sink(output, fmt, resume, fields=fields, order=inputs))
        except ValueError as exc:  # resuming a file that holds something else: never overwrite it
            raise click.UsageError(str(exc)) from None
        todo = [path for path in inputs if path not in sink.done]
        show_progress = not quiet and sys.stderr.isatty()
        with tqdm(total=len(todo), unit="img", disable=not show_progress, file=sys.stderr, dynamic_ncols=True) as bar:
            copies = None
            if annotated_dir:
                from bottlecheck.annotate import AnnotatedCopies

                copies = AnnotatedCopies(annotated_dir, inputs)
            if ray_address:
                from bottlecheck.ray_batch import classify_on_ray

                predictions = classify_on_ray(todo, classifier, engine, batch_size=batch_size, workers=workers)
            else:
                predictions = classifier.classify_paths(todo, batch_size=batch_size, workers=workers)
            try:
                for prediction in predictions:
                    sink.write(prediction.as_dict())
                    if copies is not None:
                        copies.save(prediction.path, prediction)
                    counts[prediction.status] += 1
                    bar.update(1)
            except ray_failures as exc:  # the cluster failed mid-run: the rows so far are kept
                kept = f"; {output} keeps the rows so far, --resume continues" if output else ""
                raise click.ClickException(f"{exc}{kept}") from None
    if not quiet:
        skipped = f", {len(inputs) - len(todo)} already done" if resume else ""
        unknown = f", {counts['unknown']} unknown" if two_stage else ""
        click.echo(
            f"{plural(len(todo), 'image')}: {counts['open']} open, {counts['closed']} closed{unknown}, "
            f"{plural(counts['error'], 'error')}{skipped}",
            err=True,
        )
    # Earlier error rows were retried, so the new errors are all the output holds.
    sys.exit(EXIT_SOME_ERRORS if counts["error"] else EXIT_OK)


@main.command()
@model_option
@engine_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(model_path, engine, as_json):
    """Show the package, the model and the engine that would run it."""
    classifier = load_classifier(model_path, engine)
    artifact = classifier.artifact
    facts: dict[str, Any] = {
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
    if artifact.stages:  # model 2: what each stage is, and the rule that makes the answer
        facts["stages"] = {
            name: {
                "input_size": int(stage["input"]["size"]),
                # How the input is made, where it is more than a square letterbox (the any-size finder).
                **{k: stage["input"][k] for k in ("pad_to_multiple", "reducing_gap") if k in stage["input"]},
                "files": stage["files"],
                **{k: stage[k] for k in ("stride", "min_score", "crop_span", "labels", "temperature") if k in stage},
            }
            for name, stage in artifact.stages.items()
        }
        facts["decision"] = artifact.metadata.get("decision", {})
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    for key, value in facts.items():
        if key in ("metrics", "stages", "decision"):
            continue
        click.echo(f"{key + ':':<15} {', '.join(value) if isinstance(value, list) else value}")
    for name, stage in facts.get("stages", {}).items():
        details = ", ".join(f"{k} {v}" for k, v in stage.items() if k != "files")
        click.echo(f"stage {name + ':':<9} {details}")
    if facts.get("decision"):
        click.echo(f"{'decision:':<15} {facts['decision'].get('rule', facts['decision'])}")
    click.echo("metrics:")
    for line in metric_lines(artifact.metrics, artifact.stages):
        click.echo(f"  {line}")


def metric_lines(metrics: dict[str, Any], stages: dict[str, Any]) -> list[str]:
    """One line per recorded evaluation: photos (with how many were answered unknown), or a stage's crops."""
    lines = []
    for name, value in metrics.items():
        if isinstance(value, dict) and "accuracy" in value:
            line = (
                f"{name}: accuracy {value['accuracy']}, ROC AUC {value.get('roc_auc')}, "
                f"ECE {value.get('ece')}, {value.get('count')} images answered"
            )
            unknown = value.get("unknown")
            if unknown:  # a two-stage model: the photos it did not answer, and what that costs
                line += (
                    f"; unknown {unknown['by_label']}, balanced accuracy with unknown as wrong "
                    f"{unknown['balanced_accuracy_unknown_as_wrong']}"
                )
            lines.append(line)
        elif name == "finder" and isinstance(value, dict):  # recall/precision by score threshold
            at = str(stages.get("finder", {}).get("min_score"))
            for group, by_threshold in value.items():
                if isinstance(by_threshold, dict) and at in by_threshold:
                    found = by_threshold[at]
                    lines.append(
                        f"finder.{group}: recall {found['recall']}, precision {found['precision']} "
                        f"at score {at}, {found['tops']} tops"
                    )
        elif name == "leave_one_out" and isinstance(value, dict):
            lines += leave_one_out_lines(value)
        elif isinstance(value, dict) and isinstance(value.get("photos"), dict):  # photos by source, trained on
            for source, sub in value["photos"].items():
                lines.append(f"{name}.{source} (trained on): {_photo_line(sub)}")
        elif isinstance(value, dict):  # grouped, e.g. validation by source, or the judge's crops
            unit = "crops" if name == "judge" else "images"
            for group, sub in value.items():
                if isinstance(sub, dict) and "accuracy" in sub:
                    lines.append(f"{name}.{group}: accuracy {sub['accuracy']}, {sub.get('count')} {unit}")
    return lines


def _photo_line(sub: dict[str, Any]) -> str:
    line = f"balanced accuracy {sub.get('balanced_accuracy')} on {sub.get('photos')} photos"
    line += f", {sub.get('unknown')} unknown"
    if "ece" in sub:
        line += f", answers right {sub.get('answered_accuracy')}, ECE {sub['ece']}"
    return line


def leave_one_out_lines(table: dict[str, Any]) -> list[str]:
    """What a model trained without each source or family did on it: the number a model is chosen on."""
    shipped = table.get("shipped", {})
    lines = []
    for held, result in table.get("left_out", {}).items():
        photos, crops = result.get("photos", {}), result.get("crops", {})
        if held in photos:
            line = f"leave_one_out.{held}: {_photo_line(photos[held])}"
            before = shipped.get("photos", {}).get(held)
            if before:
                line += f" (model {shipped.get('version')}: {before.get('balanced_accuracy')})"
            lines.append(line)
        unseen = crops.get(f"caps-unseen: {held}") or crops.get(held)
        if unseen:
            lines.append(
                f"leave_one_out.{held}: crops right {unseen.get('accuracy')}, open vs closed "
                f"{unseen.get('open_vs_closed')} on {unseen.get('crops')} crops never trained on"
            )
    return lines


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
    from bottlecheck.server.gunicorn_app import serve as run_server

    app_config = {"MODEL": model_path, "ENGINE": engine}
    for key, value in (("API_KEYS_FILE", api_keys_file), ("RATE_LIMIT", rate_limit), ("MAX_UPLOAD_MB", max_upload_mb)):
        if value is not None:
            app_config[key] = value
    run_server(host, port, workers, threads, app_config, timeout=timeout)
