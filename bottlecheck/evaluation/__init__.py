"""Measuring a model on labelled photos, with the same pipeline and engine as ``classify``.

:mod:`.datasets` reads labelled folders (``DIR/{open,closed}``, the corrected tops a review
exported) and splits them; :mod:`.metrics` computes accuracy, P/R/F1, ROC AUC, calibration
error, temperature and threshold; :mod:`.evaluate` runs a model over examples and reports per
source. ``evaluate --report``'s page is :mod:`bottlecheck.writers.report`.
"""
