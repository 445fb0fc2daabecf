"""Import TensorFlow without its C++ start-up banner on the terminal.

TensorFlow's C++ core prints lines such as "oneDNN custom operations are on" to
file descriptor 2 while it loads, before its own log level
(``TF_CPP_MIN_LOG_LEVEL``) takes effect, so neither that variable nor Python's
logging can hold them back; they bury ``train``'s progress lines and put noise
into ``classify --engine tensorflow``. This imports TensorFlow with descriptor 2
pointed at a temporary file, and replays what was caught only if the import fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
from types import ModuleType


def import_tensorflow() -> ModuleType:
    """``import tensorflow`` (and Keras), quietly; raises ImportError as the import would."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later C++ lines: warnings and above only
    sys.stderr.flush()
    with tempfile.TemporaryFile() as caught:
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow
