"""The kinds of model, by the name in their metadata, and the classifier that answers with each.

A model directory's ``metadata.json`` says its ``kind`` (:attr:`ModelArtifact.kind`);
:func:`load_classifier` looks the kind up here and lets that kind's classifier load it.
The package's own kinds are registered explicitly, the first time a kind is looked up, by
calling each kind module's ``register_kinds(register)`` (the pattern of llm's
``register_models`` hook): no import has a side effect, and this module imports no kind.
Another kind (a test's toy, a plugin) calls :func:`register_kind` itself; the pipeline, the
server and the writers need no edit for it, since they read only the base
:class:`~bottlecheck.classifier.Classifier` and its :class:`~bottlecheck.prediction.Prediction`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bottlecheck.artifact import ModelArtifact, ModelError, load_artifact

if TYPE_CHECKING:
    from bottlecheck.classifier import Classifier

#: Loads a model of one kind: (artifact, engine name, threshold or None, threads or None) -> classifier.
KindLoader = Callable[[ModelArtifact, str, "float | None", "int | None"], "Classifier"]

#: The modules that define the package's kinds; each has ``register_kinds(register)``.
BUILTIN_KIND_MODULES = ("bottlecheck.classifier", "bottlecheck.tops_classifier")

_registry: dict[str, KindLoader] = {}
_builtins_registered = False
_lock = threading.Lock()


def register_kind(name: str, load: KindLoader) -> None:
    """Let models whose metadata says ``kind: name`` load through ``load``; a second registration replaces the first."""
    with _lock:
        _registry[name] = load


def unregister_kind(name: str) -> None:
    """Forget a kind (a test's toy, when the test ends)."""
    with _lock:
        _registry.pop(name, None)


def _register_builtins() -> None:
    global _builtins_registered
    if _builtins_registered:
        return
    for module in BUILTIN_KIND_MODULES:
        importlib.import_module(module).register_kinds(register_kind)
    _builtins_registered = True


def registered_kinds() -> list[str]:
    """The kinds a model may say it is, sorted."""
    _register_builtins()
    with _lock:
        return sorted(_registry)


def loader_for(kind: str) -> KindLoader:
    """The loader of ``kind``; :class:`ModelError` for a kind nobody registered (a newer model, a missing plugin)."""
    _register_builtins()
    with _lock:
        load = _registry.get(kind)
    if load is None:
        raise ModelError(f"model kind {kind!r} is not one this bottlecheck knows ({', '.join(registered_kinds())})")
    return load


def load_classifier(
    model: str | Path | ModelArtifact | None = None,
    engine: str = "auto",
    threshold: float | None = None,
    threads: int | None = None,
) -> Classifier:
    """The classifier for ``model`` (a directory, its artefact, None: the bundled one), of the kind it says it is."""
    artifact = model if isinstance(model, ModelArtifact) else load_artifact(model)
    return loader_for(artifact.kind)(artifact, engine, threshold, threads)
