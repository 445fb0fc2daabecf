"""The answers bottlecheck gives, named in one place.

``LABELS`` is the order of the model's classes: index 1 (``open``) is the
positive class whose probability the model outputs as ``p_open``. A model
artefact lists its labels in its metadata, and loading one checks that they are
these (see :func:`bottlecheck.artifact.load_artifact`).
"""

from __future__ import annotations

CLOSED, OPEN, ERROR, UNKNOWN = "closed", "open", "error", "unknown"
LABELS: tuple[str, ...] = (CLOSED, OPEN)
# What a photo can be answered with: a two-stage model says ``unknown`` when it finds no
# bottle top it trusts (the top is out of the frame, no bottle, too dark). An answer, not an error.
STATUSES: tuple[str, ...] = (OPEN, CLOSED, UNKNOWN)
