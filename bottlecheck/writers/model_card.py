"""What ``bottlecheck info`` tells a person about a model: its facts, its stages, and its recorded metrics.

The metadata (``metadata.json``) holds the numbers as training and evaluation wrote them; this
module turns them into what a reader needs, in the order they need it: the figures on photos the
model never saw first, under their own heading, the trained-on ones apart (they do not say how it
will do on new photos). It sits beside the report code (``report.py``) rather than in the CLI so
that the command only loads the model and prints, and so that tests can check the wording alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bottlecheck import __version__

if TYPE_CHECKING:
    from bottlecheck.classifier import Classifier

#: Stage settings that make the answer, so shown (the rest of a stage's metadata is how it was trained).
_STAGE_SETTINGS = ("stride", "min_score", "crop_span", "labels", "temperature")


def model_facts(classifier: Classifier) -> dict[str, Any]:
    """The package, the model and the engine that runs it, as ``info --json`` prints them."""
    artifact = classifier.artifact
    facts: dict[str, Any] = {
        "bottlecheck": __version__,
        "model": artifact.name,
        "model_version": artifact.version,
        "model_dir": str(artifact.directory),
        "sha256": artifact.checksum,
        "kind": artifact.kind,
        "engine": classifier.engine_name,
        "input_size": artifact.input_size,
        "labels": artifact.labels,
        "threshold": artifact.threshold,
        "metrics": artifact.metrics,
    }
    if artifact.stages:  # a two-stage model: what each stage is, and the rule that makes the answer
        facts["stages"] = {name: _stage_facts(stage) for name, stage in artifact.stages.items()}
        facts["decision"] = artifact.metadata.get("decision", {})
    return facts


def _stage_facts(stage: dict[str, Any]) -> dict[str, Any]:
    return {
        "input_size": int(stage["input"]["size"]),
        # How the input is made, where it is more than a square letterbox (the any-size finder).
        **{k: stage["input"][k] for k in ("pad_to_multiple", "reducing_gap") if k in stage["input"]},
        "files": stage["files"],
        **{k: stage[k] for k in _STAGE_SETTINGS if k in stage},
        # Unsure tops (3.1) and doubtful candidates (3.2) judged again at more spans: what makes
        # the answer, so shown.
        **(
            {"second_look": {k: v for k, v in stage["second_look"].items() if k != "rule"}}
            if "second_look" in stage
            else {}
        ),
        # The rescue gate (3.3): which output column, and how sure it must be to count a candidate.
        **(
            {"rescue": {k: v for k, v in stage["rescue"].items() if k in ("column", "sure")}}
            if "rescue" in stage
            else {}
        ),
        # The last look (3.5): which output column, how sure it and the rescue gate must be, and (3.6) the
        # finder's score it reads down to.
        **(
            {
                "last_look": {
                    k: v
                    for k, v in stage["last_look"].items()
                    if k in ("column", "sure", "guard", "min_score", "max_tops")
                }
            }
            if "last_look" in stage
            else {}
        ),
        # The photo calibration (3.4): the temperature every reported p_open carries, and what it did.
        **(
            {
                "photo_calibration": {
                    k: v for k, v in stage["photo_calibration"].items() if k in ("temperature", "ece_answered_photos")
                }
            }
            if "photo_calibration" in stage
            else {}
        ),
    }


def info_lines(facts: dict[str, Any], stages: dict[str, Any]) -> list[str]:
    """``info``'s text: one line per fact, per stage and for the decision, then the metrics by heading.

    ``stages`` are the artifact's own (the finder's metrics are read at its ``min_score``).
    """
    lines = []
    for key, value in facts.items():
        if key in ("metrics", "stages", "decision"):
            continue
        lines.append(f"{key + ':':<15} {', '.join(value) if isinstance(value, list) else value}")
    for name, stage in facts.get("stages", {}).items():
        lines.append(f"stage {name + ':':<9} {_stage_line(stage)}")
    if facts.get("decision"):
        lines.append(f"{'decision:':<15} {facts['decision'].get('rule', facts['decision'])}")
    for heading, found in metric_sections(metric_lines(facts["metrics"], stages)).items():
        lines.append(heading)
        lines.extend(f"  {line}" for line in found)
    return lines


def _stage_line(stage: dict[str, Any]) -> str:
    details = ", ".join(
        f"{k} {v}"
        for k, v in stage.items()
        if k not in ("files", "second_look", "rescue", "last_look", "photo_calibration")
    )
    if "second_look" in stage:
        look = stage["second_look"]
        spans = " and ".join(f"{span:g}" for span in look["spans"])
        details += f", second look at spans {spans} when p_open is within {look['band']:g} of the threshold"
        if look.get("min_top"):
            details += f" and p_top is at least {look['min_top']:g}"
        if look.get("top_floor") is not None:
            details += (
                f"; and at candidates with p_top from {look['top_floor']:g} up to the decision's line, "
                "their p_top the mean of the looks"
            )
    if "rescue" in stage:
        details += (
            f"; then a candidate still under the line counts when the rescue gate (output {stage['rescue']['column']}) "
            f"gives p_top at least {stage['rescue']['sure']:g}"
        )
    if "last_look" in stage:
        last = stage["last_look"]
        details += (
            f"; then, in a photo where still nothing counts, a candidate counts when the last look (output "
            f"{last['column']}) gives p_top at least {last['sure']:g} and the rescue gate at least {last['guard']:g}"
        )
        if last.get("min_score") is not None:
            details += f", the finder's candidates down to score {last['min_score']:g} among them"
            if last.get("max_tops") is not None:
                details += f" (the strongest {last['max_tops']} a photo)"
    if "photo_calibration" in stage:
        calibration = stage["photo_calibration"]
        ece = calibration.get("ece_answered_photos", {})
        details += (
            f"; each counted top's p_open is reported at temperature {calibration['temperature']:g} after the looks "
            "(statuses unchanged)"
        )
        if "unseen_groups_each_left_out" in ece:
            details += (
                f": ECE on real groups the cap never saw {ece['unseen_groups_before']:g} -> "
                f"{ece['unseen_groups_each_left_out']:g} (each group left out), on the groups it was trained on "
                f"{ece['groups_the_cap_trained_on_before']:g} -> {ece['groups_the_cap_trained_on_after']:g}"
            )
    return details


#: info's metric headings, in the order a reader needs them: what the model does on what it never saw first.
HELD_OUT, FINDER, TRAINED_ON, OTHER = (
    "held out (never trained on: what to expect):",
    "finder:",
    "trained on (in-distribution: not a measure of generalisation):",
    "other metrics:",
)


def metric_sections(lines: list[str]) -> dict[str, list[str]]:
    """``lines`` grouped under :data:`HELD_OUT`, :data:`FINDER`, :data:`TRAINED_ON` (empty headings left out)."""
    sections: dict[str, list[str]] = {HELD_OUT: [], FINDER: [], TRAINED_ON: [], OTHER: []}
    for line in lines:
        name = line.split(":", 1)[0]
        if name.startswith("finder."):
            sections[FINDER].append(line)
        elif "trained on)" in name or name.endswith("trained_on"):
            sections[TRAINED_ON].append(line)
        elif name.startswith(("leave_one_", "unseen", "test", "held_out")) or "held_out" in name:
            sections[HELD_OUT].append(line)
        else:
            sections[OTHER].append(line)
    return {heading: found for heading, found in sections.items() if found}


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
        elif name == "groups_and_kinds" and isinstance(value, dict):
            lines += groups_and_kinds_lines(value)
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
        if "balanced_accuracy" in photos:  # a 3.x cap judge's table: the held-out source's own photos
            photos = {held: photos}
        for kind, unit in (("crops", "tops' crops"), ("unseen_renders", "unseen renders")):
            if "balanced_accuracy" in result.get(kind, {}):
                sub = result[kind]
                lines.append(
                    f"leave_one_out.{held}: open vs closed balanced {sub['balanced_accuracy']} on {sub['crops']} "
                    f"{unit} never trained on, ECE {sub.get('ece')}"
                )
        if held in photos:
            line = f"leave_one_out.{held}: {_photo_line(photos[held])}"
            before = shipped.get("photos", {}).get(held)
            if before:
                line += f" (model {shipped.get('version')}: {before.get('balanced_accuracy')})"
            once = result.get("photos_one_look", {}).get("balanced_accuracy")
            if once is not None:  # a model with a second look: what it adds on this source
                line += f"; judged once {once}"
            gate_once = result.get("photos_gate_once", {}).get("balanced_accuracy")
            if gate_once is not None:  # and with the gate's second look: what that adds
                line += f"; candidates' p_top judged once {gate_once}"
            lines.append(line)
        unseen = crops.get(f"caps-unseen: {held}") or crops.get(held)
        if unseen:
            lines.append(
                f"leave_one_out.{held}: crops right {unseen.get('accuracy')}, open vs closed "
                f"{unseen.get('open_vs_closed')} on {unseen.get('crops')} crops never trained on"
            )
    if "mean_left_out_real_sources" in table:
        lines.append(
            f"leave_one_out: mean over the real sources {table['mean_left_out_real_sources']} "
            f"(model {shipped.get('version')}: {table.get('mean_shipped_real_sources')})"
        )
    draws = table.get("view_draws")
    if draws:  # the same recipe with other training views: how far that mean is one draw's luck

        def listed(values: list[float]) -> str:
            return f"{', '.join(map(str, values))} (mean {round(sum(values) / len(values), 3)})"

        line = f"leave_one_out: that mean is one draw of the training views; seeds {draws['seeds']} gave "
        line += listed(draws["means"])
        if "gate_once_means" in draws:
            line += f"; candidates' p_top judged once, {listed(draws['gate_once_means'])}"
        if "one_look_means" in draws:
            line += f"; judged once, {listed(draws['one_look_means'])}"
        lines.append(line)
    return lines


def groups_and_kinds_lines(record: dict[str, Any]) -> list[str]:
    """The per-group, per-kind table (the held-out set's kinds): each group left out, rows side by side.

    One line per group or kind with each recorded row's balanced accuracy, so that a reader sees
    at once where a model gained and whether any kind fell; then the means and the command.
    """
    left_out = record.get("left_out", {})
    tables = left_out.get("tables", {})
    lines = []
    if tables:
        names = list(tables)
        first = tables[names[0]]
        lines.append(f"leave_one_group_out: balanced accuracy, each repository group left out: {' | '.join(names)}")
        paths = [
            *((row, ("groups", row)) for row in first["groups"]),
            ("glass", ("glass",)),
            ("PET", ("pet",)),
            *((row, ("kinds", row)) for row in first["kinds"]),
        ]
        for row, path in paths:
            cells = [_cell(table, path) for table in tables.values()]
            values = " | ".join(str(cell.get("balanced_accuracy")) for cell in cells)
            unknown = " | ".join(str(cell.get("unknown")) for cell in cells)
            lines.append(f"leave_one_group_out.{row}: {values} ({cells[0]['photos']} photos; unknown {unknown})")
        means = " | ".join(str(t.get("mean_over_groups")) for t in tables.values())
        eces = " | ".join(str(t.get("all_answered_ece")) for t in tables.values())
        lines.append(f"leave_one_group_out: mean over groups {means}; ECE over answered photos {eces}")
        if left_out.get("note"):
            lines.append(f"leave_one_group_out: {left_out['note']}")
        if left_out.get("command"):
            lines.append(f"leave_one_group_out: made by {left_out['command']}")
    shipped = record.get("as_shipped", {})
    if shipped.get("table"):
        table = shipped["table"]
        lines.append(
            f"groups_and_kinds (trained on): mean over groups {table.get('mean_over_groups')}, glass "
            f"{table['glass'].get('balanced_accuracy')}, PET {table['pet'].get('balanced_accuracy')}, ECE over "
            f"answered photos {table.get('all_answered_ece')}; made by {shipped.get('command')}"
        )
    return lines


def _cell(table: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        table = table[key]
    return table
