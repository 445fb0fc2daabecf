"""The Keras layers training builds models with; they live on the inference side, in
:mod:`bottlecheck.layers`, because loading a saved model needs them registered (training depends on
the library, never the reverse)."""

from __future__ import annotations

from bottlecheck.layers import Upsample2x

__all__ = ["Upsample2x"]
