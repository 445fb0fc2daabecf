"""Where the answers go, each written from :class:`~bottlecheck.prediction.Prediction` rows.

:mod:`.rows` writes a run's rows (table, CSV, JSON, JSONL) and reads a partial output back for
``--resume``; :mod:`.annotate` draws the answer and every top's box on a copy of a photo;
:mod:`.report` writes ``evaluate --report``'s HTML page; :mod:`.model_card` lays out what
``info`` prints about a model.
"""
