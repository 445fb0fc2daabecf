"""``bottlecheck review``: parse, call bottlecheck.review, format."""

from __future__ import annotations

import sys

import click

from bottlecheck.cli.options import engine_option, load_classifier, model_option, threshold_option


@click.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve the page on (0.0.0.0: all).")
@click.option("--port", type=click.IntRange(0, 65535), default=5055, show_default=True, help="Port (0: any free one).")
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False),
    help="Write the labelled photos into DIR/open, DIR/closed, DIR/none (symbolic links; --copy for copies), "
    "the corrected tops to DIR/tops.json and the held-back photos to DIR/heldout.json, then exit.",
)
@click.option("--copy", is_flag=True, help="With --export: copy the photos instead of linking to them.")
@click.option(
    "--heldout",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.2,
    show_default=True,
    help="With --export: the share of each label's photos held back from the folders (never trained on).",
)
@click.option(
    "--compare",
    "compare_model",
    type=click.Path(exists=True, file_okay=False),
    metavar="NEW_MODEL_DIR",
    help="Show NEW_MODEL_DIR's answers beside the results' on the labelled photos, reviewed and held back.",
)
@click.option(
    "--sample",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="The share of confident answers shown right after the doubtful ones.",
)
@model_option
@engine_option
@threshold_option
def review(
    results: str,
    host: str,
    port: int,
    export_dir: str | None,
    copy: bool,
    heldout: float,
    compare_model: str | None,
    sample: float,
    model_path: str | None,
    engine: str,
    threshold: float | None,
) -> None:
    """Review the answers in RESULTS (the .jsonl, .json or .csv rows of classify) in a browser, and export them.

    The page shows the photos to look at first (unknown, then the least confident, then a
    sample of the confident), each with the model's boxes and each top enlarged. Keys: o open,
    c closed, n no top visible, s skip, u undo, arrows move; a click marks a missed top or
    removes a wrong box. Each decision is saved at once to RESULTS.labels.json (atomically;
    two browsers on one file: the last decision per photo wins), so a kill loses nothing
    and reopening continues. --model is the model the results are checked against (the
    page says so when RESULTS came from another one).

    \b
    Examples:
      bottlecheck classify frames/ -o results.jsonl
      bottlecheck review results.jsonl
      bottlecheck review results.jsonl --export reviewed/
      bottlecheck train reviewed/ --out line-model/
      bottlecheck review results.jsonl --compare line-model/
    """
    from bottlecheck.review.blueprint import ReviewSession, create_review_app

    if export_dir is not None:
        from bottlecheck.review.export import export
        from bottlecheck.review.queue import review_items
        from bottlecheck.review.store import LabelStore, labels_path_for

        try:
            items = review_items(results, sample)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        store = LabelStore(labels_path_for(results))
        done = export(items, store.labels(), export_dir, copy=copy, heldout=heldout)
        store.set_meta("heldout", done.heldout)
        store.set_meta("export", {"dir": export_dir, "copies": copy, "heldout_fraction": heldout})
        how = "copies" if copy else "symbolic links"
        counts = ", ".join(f"{count} {label}" for label, count in done.written.items())
        click.echo(
            f"{export_dir}: {counts} ({how}); {done.corrected} with corrected tops in tops.json; "
            f"{len(done.heldout)} held back in heldout.json",
            err=True,
        )
        if done.missing:
            click.echo(f"left out, photo missing: {len(done.missing)} ({', '.join(done.missing[:5])})", err=True)
        return

    classifier = load_classifier(model_path, engine, threshold)
    newer = newer_version = None
    if compare_model:
        newer = load_classifier(compare_model, engine, threshold)
        newer_version = f"{newer.artifact.name} {newer.artifact.version}"
    try:
        session = ReviewSession.open(
            results,
            classifier,
            f"{classifier.artifact.name} {classifier.artifact.version}",
            newer,
            newer_version,
            sample=sample,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    app = create_review_app(session)
    from werkzeug.serving import make_server

    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise click.UsageError(f"--port {port}: {exc.strerror or exc}") from None
    if session.warning:
        click.echo(f"warning: {session.warning}", err=True)
    missing = sum(item.file is None for item in session.items)
    click.echo(
        f"{len(session.items)} photos ({missing} missing), labels in {session.store.path}; "
        f"review at http://{host}:{server.server_port}/review/  (Ctrl-C to stop; every decision is already saved)",
        err=True,
    )
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
