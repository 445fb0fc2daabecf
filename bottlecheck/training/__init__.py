"""Training, export and evaluation. Needs TensorFlow: ``pip install 'bottlecheck[train]'``."""
