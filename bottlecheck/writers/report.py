"""The evaluation report as a page a QA lead can send round: one self-contained HTML file.

Headline numbers, the model, a reliability diagram (is a 0.9 confidence right 9 times in
10?), the ROC curve, the confusion matrix as a picture, accuracy per source folder, then
every mistake as a thumbnail, the most confident first (those are the dangerous ones),
with the bottle tops a two-stage model found drawn on it; photos answered ``unknown`` and
unreadable files after that. Charts are inline SVG: no plotting library, nothing fetched.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ImageDraw

from bottlecheck.imaging import ImageError, decode_photo
from bottlecheck.labels import ERROR, LABELS, UNKNOWN


def unknown_counts(by_label: dict[str, int]) -> str:
    """``3 open, 6 closed, 0 none``: how many photos of each true label were answered unknown."""
    return ", ".join(f"{count} {label}" for label, count in by_label.items())


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} .sub{color:#666;margin-top:0}
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}
.tile{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:120px}
.tile b{display:block;font-size:1.6em} .tile span{color:#666;font-size:.85em}
.charts{display:flex;flex-wrap:wrap;gap:24px} .chart{flex:1;min-width:300px}
svg text{font:12px system-ui,sans-serif} table{border-collapse:collapse;margin:1em 0}
td,th{border-bottom:1px solid #eee;padding:4px 10px;text-align:right} th:first-child,td:first-child{text-align:left}
figure{display:inline-block;width:190px;margin:6px;vertical-align:top;font-size:12px}
figure img{max-width:180px;max-height:180px;display:block;background:#ddd}
small{word-break:break-all;color:#666} dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}
dt{color:#666}
"""
W, H, PAD = 320, 260, 40


def _axes(
    title_x: str,
    title_y: str,
    x_ticks: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
    x_low: float = 0.0,
    y_ticks: tuple[float, ...] = (0.0, 0.5, 1.0),
) -> str:
    """Both axes with their titles, tick marks and tick labels (x from ``x_low`` to 1, y from 0 to 1)."""
    parts = [
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#888"/>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{PAD}" y2="10" stroke="#888"/>',
        f'<text x="{(W + PAD) / 2}" y="{H - 8}" text-anchor="middle">{title_x}</text>',
        f'<text x="12" y="{(H - PAD) / 2}" transform="rotate(-90 12 {(H - PAD) / 2})" text-anchor="middle">{title_y}</text>',
    ]
    for tick in x_ticks:
        x = _x(tick, x_low)
        parts.append(
            f'<line x1="{x:.1f}" y1="{H - PAD}" x2="{x:.1f}" y2="{H - PAD + 4}" stroke="#888"/>'
            f'<text class="tick x" x="{x:.1f}" y="{H - PAD + 15}" text-anchor="middle" font-size="10">{tick:g}</text>'
        )
    for tick in y_ticks:
        y = _y(tick)
        parts.append(
            f'<line x1="{PAD - 4}" y1="{y:.1f}" x2="{PAD}" y2="{y:.1f}" stroke="#888"/>'
            f'<text class="tick y" x="{PAD - 6}" y="{y + 3.5:.1f}" text-anchor="end" font-size="10">{tick:g}</text>'
        )
    return "".join(parts)


def _x(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return PAD + (value - low) / (high - low) * (W - 10 - PAD)


def _y(value: float) -> float:
    return H - PAD - value * (H - PAD - 10)


def reliability_svg(
    labels: np.ndarray, p_open: np.ndarray, threshold: float, bins: int = 5, element_id: str = "reliability"
) -> str:
    """Accuracy against confidence in bins from 0.5 to 1: bars on the diagonal mean honest confidence."""
    predicted = (p_open >= threshold).astype(int)
    confidence = np.where(predicted == 1, p_open, 1 - p_open)
    edges = np.linspace(0.5, 1.0, bins + 1)
    parts = [
        _axes("confidence", "accuracy", x_ticks=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0), x_low=0.5),
        f'<line x1="{_x(0.5, 0.5)}" y1="{_y(0.5)}" x2="{_x(1, 0.5)}" y2="{_y(1)}" stroke="#bbb" stroke-dasharray="4"/>',
    ]
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence >= low) & ((confidence < high) | (high == 1.0))
        if not inside.any():
            continue
        accuracy = float((predicted[inside] == labels[inside]).mean())
        x0, x1 = _x(low, 0.5), _x(high, 0.5)
        parts.append(
            f'<rect class="bin" x="{x0 + 2:.1f}" y="{_y(accuracy):.1f}" width="{x1 - x0 - 4:.1f}" '
            f'height="{_y(0) - _y(accuracy):.1f}" fill="#4a8"><title>{low:.1f}-{high:.1f}: '
            f"accuracy {accuracy:.2f} on {int(inside.sum())}</title></rect>"
            f'<text x="{(x0 + x1) / 2:.1f}" y="{max(_y(accuracy) - 4, 22):.1f}" text-anchor="middle">{int(inside.sum())}</text>'
        )
    return f'<svg id="{element_id}" viewBox="0 0 {W} {H}" width="{W}" height="{H}">{"".join(parts)}</svg>'


def roc_svg(labels: np.ndarray, p_open: np.ndarray, auc: float | None) -> str:
    """True-positive against false-positive rate (open is positive) over every threshold."""
    order = np.argsort(-p_open)
    positives, negatives = max(int(labels.sum()), 1), max(int((1 - labels).sum()), 1)
    tpr = np.concatenate([[0.0], np.cumsum(labels[order]) / positives])
    fpr = np.concatenate([[0.0], np.cumsum(1 - labels[order]) / negatives])
    points = " ".join(f"{_x(f):.1f},{_y(t):.1f}" for f, t in zip(fpr, tpr, strict=True))
    label = "" if auc is None else f'<text x="{W - 20}" y="{H - PAD - 10}" text-anchor="end">AUC {auc:.3f}</text>'
    return (
        f'<svg id="roc" viewBox="0 0 {W} {H}" width="{W}" height="{H}">{_axes("false open rate", "true open rate")}'
        f'<line x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}" stroke="#bbb" stroke-dasharray="4"/>'
        f'<polyline points="{points}" fill="none" stroke="#36c" stroke-width="2"/>{label}</svg>'
    )


def confusion_svg(matrix: list[list[int]]) -> str:
    """The confusion matrix as shaded cells: rows true, columns predicted."""
    total = max(sum(map(sum, matrix)), 1)
    cell, left, top = 90, 90, 40
    parts = []
    for j, name in enumerate(LABELS):
        parts.append(f'<text x="{left + j * cell + cell / 2}" y="{top - 10}" text-anchor="middle">said {name}</text>')
    for i, name in enumerate(LABELS):
        parts.append(f'<text x="{left - 8}" y="{top + i * cell + cell / 2}" text-anchor="end">{name}</text>')
        for j in range(len(LABELS)):
            count = matrix[i][j]
            shade = int(255 - 160 * count / total)
            colour = f"rgb({shade},{255 if i == j else shade},{shade})"
            parts.append(
                f'<rect class="cell" x="{left + j * cell}" y="{top + i * cell}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="{colour}"/><text x="{left + j * cell + cell / 2}" y="{top + i * cell + cell / 2 + 5}" '
                f'text-anchor="middle" font-size="16" class="count">{count}</text>'
            )
    size = left + len(LABELS) * cell + 10
    return f'<svg id="confusion" viewBox="0 0 {size} {size}" width="{size}" height="{size}">{"".join(parts)}</svg>'


def _thumbnail(row: dict[str, Any], size: int = 180) -> str:
    """A thumbnail, with the tops a two-stage model found drawn on it."""
    try:
        image, photo_size = decode_photo(row["path"], max_side=size * 2)
    except ImageError:
        return ""
    image = image.copy()
    image.thumbnail((size, size))
    scale = image.width / photo_size[0]
    draw = ImageDraw.Draw(image)
    for top in row.get("tops") or ():
        colour = (220, 40, 40) if top["status"] == "open" else (40, 190, 70)
        draw.rectangle([v * scale for v in top["box"]], outline=colour, width=2)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _card(row: dict[str, Any]) -> str:
    p_open = "" if row.get("p_open") is None else f"<br>p_open {row['p_open']:.3f}"
    said = row["status"] if row.get("confidence") is None else f"{row['status']} ({row['confidence']:.2f})"
    count = row.get("bottles")
    tops = "" if count is None else f"<br>{count} top{'' if count == 1 else 's'}, {row['open_tops']} open"
    return (
        f'<figure><img src="{_thumbnail(row)}" alt=""><figcaption><b>true {html.escape(row["label"])}</b>, '
        f"said {said}{p_open}{tops}<br><small>{html.escape(str(row['path']))}</small></figcaption></figure>"
    )


def write_html_report(path: str | Path, report: dict[str, Any], rows: list[dict], limit: int = 500) -> int:
    """Write the page; returns how many photos were misclassified."""
    scored = [r for r in rows if r["status"] in LABELS and r["label"] in LABELS]
    labels = np.array([LABELS.index(r["label"]) for r in scored], dtype=int)
    p_open = np.array([r["p_open"] for r in scored], dtype=float)
    wrong = sorted((r for r in scored if r["status"] != r["label"]), key=lambda r: -r["confidence"])
    unknown = [r for r in rows if r["status"] == UNKNOWN]
    errors = [r for r in rows if r["status"] == ERROR]
    model = report.get("model", {})
    tiles = [
        ("accuracy", f"{report['accuracy']:.3f}", f"{report['count']} photos answered"),
        ("balanced accuracy", f"{report['balanced_accuracy']:.3f}", "mean of the two recalls"),
        ("ROC AUC", "n/a" if report.get("roc_auc") is None else f"{report['roc_auc']:.3f}", "open vs closed"),
        ("calibration error", f"{report['ece']:.3f}", "expected, over confidence bins"),
    ]
    if "unknown" in report:
        u = report["unknown"]
        tiles.append(
            ("answered unknown", str(sum(u["by_label"].values())), f"true labels: {unknown_counts(u['by_label'])}")
        )
    tile_html = "".join(
        f'<div class="tile"><span>{name}</span><b>{value}</b><span>{html.escape(note)}</span></div>'
        for name, value, note in tiles
    )
    sources = report.get("by_source", {})
    source_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{sub['count']}</td><td>{sub['accuracy']:.3f}</td>"
        f"<td>{sub['balanced_accuracy']:.3f}</td><td>{sub['ece']:.3f}</td></tr>"
        for name, sub in sources.items()
    )
    # A confidence must mean the same on every source, not only on average: one diagram each.
    source_of = np.array([str(r.get("source", "")) for r in scored])
    source_charts = "".join(
        f'<div class="chart"><h3>Reliability: {html.escape(name)}</h3>'
        + reliability_svg(
            labels[source_of == name],
            p_open[source_of == name],
            report["threshold"],
            element_id=f"reliability-{html.escape(name)}",
        )
        + "</div>"
        for name in sources
        if (source_of == name).any()
    )
    model_items = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in model.items())
    model_items += f"<dt>threshold</dt><dd>{report['threshold']}</dd>"
    charts = ""
    if len(scored):
        charts = (
            f'<div class="charts"><div class="chart"><h3>Reliability</h3>{reliability_svg(labels, p_open, report["threshold"])}</div>'
            f'<div class="chart"><h3>ROC curve</h3>{roc_svg(labels, p_open, report.get("roc_auc"))}</div>'
            f'<div class="chart"><h3>Confusion</h3>{confusion_svg(report["confusion_matrix"]["values"])}</div></div>'
        )
    shown = wrong[:limit]
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bottlecheck evaluation</title>
<style>{STYLE}</style></head><body>
<h1>bottlecheck evaluation</h1><p class="sub">{html.escape(str(model.get("name", "")))} {html.escape(str(model.get("version", "")))}</p>
<div class="tiles">{tile_html}</div>
<h2>Model</h2><dl>{model_items}</dl>
{charts}
{"<h2>By source</h2><table><tr><th>source</th><th>photos</th><th>accuracy</th><th>balanced</th><th>ECE</th></tr>" + source_rows + "</table>" if source_rows else ""}
{'<div class="charts" id="source-reliability">' + source_charts + "</div>" if source_charts else ""}
<h2 id="mistakes">Misclassified: {len(wrong)}{" (the first " + str(limit) + ")" if len(wrong) > limit else ""}, most confident first</h2>
<div id="mistake-cards">{"".join(_card(r) for r in shown) or "<p>None.</p>"}</div>
{f'<h2>Answered unknown: {len(unknown)}</h2><div id="unknown-cards">' + "".join(_card(r) for r in unknown[:limit]) + "</div>" if unknown else ""}
<h2>Unreadable: {len(errors)}</h2><ul>{"".join(f"<li>{html.escape(str(r['path']))}: {html.escape(str(r['error']))}</li>" for r in errors)}</ul>
</body></html>"""
    Path(path).write_text(page, encoding="utf-8")
    return len(wrong)
