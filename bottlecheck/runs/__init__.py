"""A run: inputs from :mod:`bottlecheck.sources` through a classifier to :mod:`bottlecheck.writers`.

:mod:`.classify` is one run's side effects (the rows, ``--events``, annotated copies and clips,
SIGTERM), which ``classify`` and ``watch`` share; :mod:`.events` finds the stretches of a clip
where an open top is seen; :mod:`.watch` classifies what lands in a folder (watchdog, settling, the
webhook queue, the watch's Prometheus metrics); :mod:`.ray_batch` runs the same pipeline as a Ray
Data job (``classify --ray``).
"""
