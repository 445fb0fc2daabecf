"""``bottlecheck train`` and ``bottlecheck evaluate``: parse, call bottlecheck.training / evaluation, format."""

from __future__ import annotations

import json
import sys

import click

from bottlecheck.artifact import TOPS, load_artifact
from bottlecheck.cli.options import (
    batch_size_option,
    engine_option,
    load_classifier,
    model_option,
    threshold_option,
    workers_option,
)
from bottlecheck.train_config import TrainConfig

DEFAULTS = TrainConfig(data_dirs=[], out="")  # the one place training defaults live

_data_dirs = click.argument(
    "data_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, dir_okay=True)
)


def _source_weights(_ctx, _param, values) -> dict[str, float]:
    weights = {}
    for value in values:
        name, _, weight = value.partition("=")
        try:
            weights[name] = float(weight)
        except ValueError:
            raise click.BadParameter(f"expected NAME=WEIGHT, got {value!r}") from None
    return weights


@click.command()
@_data_dirs
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for the new model.")
@click.option(
    "--base",
    default=DEFAULTS.base,
    show_default=True,
    help="Start from: bundled (the shipped model), imagenet, or a model directory.",
)
@click.option("--epochs", type=click.IntRange(1), default=DEFAULTS.epochs, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=DEFAULTS.batch_size, show_default=True)
@click.option(
    "--warmup-epochs",
    type=click.IntRange(0),
    default=DEFAULTS.warmup_epochs,
    show_default=True,
    help="Epochs training the new head alone (at 10x --lr) when starting from ImageNet.",
)
@click.option(
    "--lr",
    "learning_rate",
    type=float,
    default=DEFAULTS.learning_rate,
    show_default=True,
    help="Peak learning rate of the fine-tuning phase (cosine decay).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.01, 0.9),
    default=DEFAULTS.val_fraction,
    show_default=True,
    help="Share of each (source, label) group held out for validation.",
)
@click.option(
    "--patience", type=click.IntRange(1), default=DEFAULTS.patience, show_default=True, help="Early-stopping patience."
)
@click.option(
    "--trainable-from",
    default=DEFAULTS.trainable_from or "all",
    show_default=True,
    help="First layer (name prefix) to train; earlier layers stay frozen. 'all' trains everything.",
)
@click.option(
    "--source-weight",
    "source_weights",
    multiple=True,
    callback=_source_weights,
    metavar="NAME=W",
    help="Weight of a data directory's images (by directory name).",
)
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Cap steps per epoch (quick runs).")
@click.option("--workers", type=click.IntRange(1, 32), default=DEFAULTS.workers, show_default=True)
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--version", "version_tag", default=None, help="Model version [default: UTC date and time].")
@click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    envvar="BOTTLECHECK_DATA_ROOT",
    help="Record data directories in the model's metadata relative to this [default: by name only].",
)
def train(
    data_dirs,
    out,
    base,
    epochs,
    warmup_epochs,
    batch_size,
    learning_rate,
    val_fraction,
    patience,
    trainable_from,
    source_weights,
    max_steps,
    workers,
    seed,
    version_tag,
    data_root,
):
    """Fine-tune the model on DATA_DIR/{open,closed} (one or more directories).

    Writes a complete model directory (TFLite, Keras, metadata with validation
    metrics, a calibrated temperature and a threshold chosen on validation)
    that --model accepts everywhere.

    \b
    Example:
      bottlecheck train renders/ photos/ --out runs/m1 --epochs 6
      bottlecheck evaluate holdout/ --model runs/m1 --report holdout.html
    """
    try:
        from bottlecheck.training.adapt_judge import adapt_judge
        from bottlecheck.training.train import train as train_one_stage
    except ImportError as exc:
        raise click.ClickException(f"training needs TensorFlow: pip install 'bottlecheck[train]' ({exc})") from None
    config = TrainConfig(
        data_dirs=list(data_dirs),
        out=out,
        base=base,
        epochs=epochs,
        warmup_epochs=warmup_epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        val_fraction=val_fraction,
        patience=patience,
        trainable_from=None if trainable_from == "all" else trainable_from,
        seed=seed,
        workers=workers,
        version=version_tag,
        source_weights=source_weights,
        max_steps_per_epoch=max_steps,
        data_root=data_root,
    )
    try:
        # A two-stage base (the tops kind, as the bundled model) keeps its finder and has its judge refitted on
        # the photos' tops; ImageNet or a one-stage base is fine-tuned whole.
        two_stage = base != "imagenet" and load_artifact(None if base == "bundled" else base).kind == TOPS
        run_training = adapt_judge if two_stage else train_one_stage
        run_training(config, log=lambda line: click.echo(line, err=True))
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@_data_dirs
@model_option
@engine_option
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write an HTML page with every misclassified image as a thumbnail.",
)
@threshold_option
@batch_size_option
@workers_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--record",
    metavar="NAME",
    help="Also store the results in the model's metadata.json under metrics.NAME (shown by `bottlecheck info`).",
)
@click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    envvar="BOTTLECHECK_DATA_ROOT",
    help="With --record: name data directories relative to this [default: by name only].",
)
def evaluate(data_dirs, model_path, engine, fmt, report, threshold, batch_size, workers, quiet, record, data_root):
    """Accuracy, per-class precision/recall/F1, confusion matrix, ROC AUC and calibration
    error of a model on DATA_DIR/{open,closed}."""
    from tqdm import tqdm

    from bottlecheck.evaluation.datasets import scan_data_dirs, unread_images
    from bottlecheck.evaluation.evaluate import evaluate as run_evaluation
    from bottlecheck.evaluation.evaluate import format_table
    from bottlecheck.writers.report import write_html_report

    classifier = load_classifier(model_path, engine, threshold)
    try:
        examples = scan_data_dirs(data_dirs)  # walked once: the count for the bar and the inputs
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    for data_dir in data_dirs:  # a folder of photos left out of every figure without a word misleads
        for where, count in unread_images(data_dir).items():
            click.echo(
                f"warning: ignoring {where} ({count} image{'' if count == 1 else 's'}): "
                "only closed/, open/ and none/ are evaluated",
                err=True,
            )
    with tqdm(total=len(examples), unit="img", disable=quiet or not sys.stderr.isatty(), file=sys.stderr) as bar:
        results, rows = run_evaluation(classifier, examples, batch_size, workers, progress=bar.update)
    if report:
        wrong = write_html_report(report, results, rows)
        click.echo(f"wrote {report} ({wrong} misclassified)", err=True)
    if record:
        from bottlecheck.artifact import write_metadata
        from bottlecheck.evaluation.datasets import describe_sources

        metadata = dict(classifier.artifact.metadata)
        metadata.setdefault("metrics", {})[record] = {"data": describe_sources(data_dirs, data_root), **results}
        write_metadata(classifier.artifact.directory, metadata)
        click.echo(f"recorded as metrics.{record} in {classifier.artifact.directory / 'metadata.json'}", err=True)
    click.echo(json.dumps(results, indent=2) if fmt == "json" else format_table(results))
