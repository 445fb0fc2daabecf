"""Measure a model on labelled folders, and write an HTML report of its mistakes.

Evaluation runs the same batch pipeline and engine as ``classify``, so the
numbers describe exactly what users get. No TensorFlow needed.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bottlecheck.classifier import Classifier
from bottlecheck.datasets import NO_TOP, Example, scan_data_dirs
from bottlecheck.imaging import ImageError, decode_image
from bottlecheck.labels import ERROR, LABELS, UNKNOWN
from bottlecheck.metrics import classification_report, reports_by_source

__all__ = ["evaluate", "format_table", "scan_data_dirs", "write_html_report"]


def evaluate(
    classifier: Classifier,
    examples: Sequence[Example],
    batch_size: int | None = None,
    workers: int = 2,
    progress=None,
) -> tuple[dict[str, Any], list[dict]]:
    """Metrics over ``examples`` (see :func:`scan_data_dirs`), overall and per source."""
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
        "engine": classifier.engine.name,
    }
    if len({r["source"] for r in scored}) > 1:
        report["by_source"] = reports_by_source(labels, p_open, [r["source"] for r in scored], classifier.threshold)
    return report, rows


def format_table(report: dict[str, Any]) -> str:
    """The report as aligned text for a terminal."""
    lines = [
        f"images {report['count']}  errors {report.get('errors', 0)}  threshold {report['threshold']}",
        f"accuracy {report['accuracy']:.4f}  balanced {report['balanced_accuracy']:.4f}  "
        f"ROC AUC {report['roc_auc']}  ECE {report['ece']:.4f}",
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
        lines.append(
            f"unknown: {u['by_label']}  balanced accuracy with unknown as wrong "
            f"{u['balanced_accuracy_unknown_as_wrong']}  photos with no top answered unknown "
            f"{u['no_top_answered_unknown']} of {u['no_top_photos']}"
        )
    for source, sub in report.get("by_source", {}).items():
        lines.append(
            f"source {source}: accuracy {sub['accuracy']:.4f} on {sub['count']} "
            f"(AUC {sub['roc_auc']}, ECE {sub['ece']:.4f})"
        )
    return "\n".join(lines)


def _thumbnail(path: str, size: int = 160) -> str:
    try:
        image = decode_image(path, max_side=size)
    except ImageError:
        return ""
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_html_report(path: str | Path, report: dict[str, Any], rows: list[dict], limit: int = 500) -> int:
    """A self-contained page: the metrics, then every misclassified image with its scores."""
    wrong = [r for r in rows if r["status"] != ERROR and r["status"] != r["label"]]
    wrong.sort(key=lambda r: -r["confidence"])
    errors = [r for r in rows if r["status"] == ERROR]
    cards = []
    for r in wrong[:limit]:
        cards.append(
            f'<figure><img src="{_thumbnail(r["path"])}" alt=""><figcaption><b>true {r["label"]}</b>, '
            f"said {r['status']} ({r['confidence']:.2f})<br>p_open {r['p_open']:.3f}<br>"
            f"<small>{html.escape(str(r['path']))}</small></figcaption></figure>"
        )
    error_items = "".join(f"<li>{html.escape(str(r['path']))}: {html.escape(str(r['error']))}</li>" for r in errors)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>bottlecheck evaluation</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}pre{{background:#f4f4f4;padding:1em}}
figure{{display:inline-block;width:180px;margin:6px;vertical-align:top;font-size:12px}}
img{{max-width:160px;max-height:160px;display:block;background:#ddd}}small{{word-break:break-all}}</style></head>
<body><h1>bottlecheck evaluation</h1><p>model {html.escape(str(report.get("model", {})))}</p>
<pre>{html.escape(format_table(report))}</pre>
<h2>Misclassified: {len(wrong)}{" (first " + str(limit) + ")" if len(wrong) > limit else ""}</h2>
{"".join(cards) or "<p>None.</p>"}
<h2>Unreadable: {len(errors)}</h2><ul>{error_items}</ul></body></html>"""
    Path(path).write_text(page, encoding="utf-8")
    return len(wrong)
