"""bottlecheck: is this beer bottle open or closed?

The library behind the ``bottlecheck`` CLI and HTTP server::

    from bottlecheck import Classifier
    classifier = Classifier.load()              # the bundled model, LiteRT engine
    classifier.classify("photo.jpg")            # Prediction(path=..., status='open', ...)
    list(classifier.classify_paths(paths))      # batched, decoded in worker threads
"""

from bottlecheck.classifier import Classifier
from bottlecheck.imaging import ImageError, load_image
from bottlecheck.prediction import BottleTop, Prediction

__version__ = "0.2.0"
__all__ = ["BottleTop", "Classifier", "ImageError", "Prediction", "__version__", "load_image"]
