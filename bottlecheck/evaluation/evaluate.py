"""Measure a model on labelled folders, and write an HTML report of its mistakes.

Evaluation runs the same batch pipeline and engine as ``classify``, so the
numbers describe exactly what users get. No TensorFlow needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bottlecheck.classifier import Classifier
from bottlecheck.evaluation.datasets import NO_TOP, Example
from bottlecheck.evaluation.metrics import classification_report, reports_by_source
from bottlecheck.labels import ERROR, LABELS, UNKNOWN
from bottlecheck.writers.report import unknown_counts

__all__ = ["evaluate", "format_table"]


def evaluate(
    classifier: Classifier,
    examples: Sequence[Example],
    batch_size: int | None = None,
    workers: int | None = None,
    progress=None,
) -> tuple[dict[str, Any], list[dict]]:
    """Metrics over ``examples`` (:func:`~bottlecheck.evaluation.datasets.scan_data_dirs`), overall and per source."""
    rows = []
    for example, prediction in zip(
        examples, classifier.classify_paths([e.path for e in examples], batch_size, workers), strict=True
    ):
        rows.append({**prediction.as_dict(), "label": example.label_name, "source": example.source})
        if progress:
            progress(1)
    # Metrics of the answers given: open/closed photos answered open or closed. A two-stage
    # model may answer unknown; how often, and what that does to balanced accuracy, is
    # reported beside them, and photos in none/ measure how often it rightly says unknown.
    scored = [r for r in rows if r["status"] in LABELS and r["label"] in LABELS]
    labels = np.array([LABELS.index(r["label"]) for r in scored], dtype=int)
    p_open = np.array([r["p_open"] for r in scored], dtype=float)
    report = classification_report(labels, p_open, classifier.threshold)
    report["errors"] = sum(r["status"] == ERROR for r in rows)
    unknown = {name: sum(r["status"] == UNKNOWN and r["label"] == name for r in rows) for name in (*LABELS, NO_TOP)}
    if any(unknown.values()) or any(r["label"] == NO_TOP for r in rows):
        recalls = []
        for name in LABELS:
            truth = [r for r in rows if r["label"] == name and r["status"] != ERROR]
            if truth:
                recalls.append(sum(r["status"] == name for r in truth) / len(truth))
        no_top = [r for r in rows if r["label"] == NO_TOP and r["status"] != ERROR]
        report["unknown"] = {
            "by_label": unknown,
            "balanced_accuracy_unknown_as_wrong": round(float(np.mean(recalls)), 4) if recalls else None,
            "no_top_photos": len(no_top),
            "no_top_answered_unknown": round(sum(r["status"] == UNKNOWN for r in no_top) / len(no_top), 4)
            if no_top
            else None,
        }
    report["model"] = {
        "name": classifier.artifact.name,
        "version": classifier.artifact.version,
        "engine": classifier.engine_name,
    }
    if len({r["source"] for r in scored}) > 1:
        report["by_source"] = reports_by_source(labels, p_open, [r["source"] for r in scored], classifier.threshold)
    return report, rows


def _four(value: float | None) -> str:
    """A figure at four decimals like its neighbours (0.9000, not 0.9); n/a where it is undefined (one class)."""
    return "n/a" if value is None else f"{value:.4f}"


def format_table(report: dict[str, Any]) -> str:
    """The report as aligned text for a terminal."""
    lines = [
        f"images {report['count']}  errors {report.get('errors', 0)}  threshold {report['threshold']}",
        f"accuracy {report['accuracy']:.4f}  balanced {report['balanced_accuracy']:.4f}  "
        f"ROC AUC {_four(report['roc_auc'])}  ECE {report['ece']:.4f}",
        "",
        f"{'class':<8} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}",
    ]
    for name in LABELS:
        c = report["per_class"][name]
        lines.append(f"{name:<8} {c['precision']:>9.4f} {c['recall']:>7.4f} {c['f1']:>7.4f} {c['support']:>8}")
    matrix = report["confusion_matrix"]["values"]
    lines += ["", "confusion (rows true, columns predicted)", f"{'':<8} {'closed':>7} {'open':>7}"]
    for name, row in zip(LABELS, matrix, strict=True):
        lines.append(f"{name:<8} {row[0]:>7} {row[1]:>7}")
    if "unknown" in report:
        u = report["unknown"]
        line = (
            f"answered unknown: {unknown_counts(u['by_label'])}; balanced accuracy with unknown as wrong "
            f"{u['balanced_accuracy_unknown_as_wrong']}"
        )
        if u["no_top_photos"]:
            said = round(u["no_top_answered_unknown"] * u["no_top_photos"])
            line += f"; photos with no top answered unknown: {said} of {u['no_top_photos']}"
        lines.append(line)
    for source, sub in report.get("by_source", {}).items():
        lines.append(
            f"source {source}: accuracy {sub['accuracy']:.4f} on {sub['count']} "
            f"(AUC {_four(sub['roc_auc'])}, ECE {sub['ece']:.4f})"
        )
    return "\n".join(lines)
