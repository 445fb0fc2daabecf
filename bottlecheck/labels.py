"""The answers bottlecheck gives, named in one place.

``LABELS`` is the order of the model's classes: index 1 (``open``) is the
positive class whose probability the model outputs as ``p_open``. A model
artefact lists its labels in its metadata, and loading one checks that they are
these (see :func:`bottlecheck.artifact.load_artifact`).
"""

from __future__ import annotations

CLOSED, OPEN, ERROR = "closed", "open", "error"
LABELS: tuple[str, ...] = (CLOSED, OPEN)
