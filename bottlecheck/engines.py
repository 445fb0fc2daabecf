"""Inference engines: one interface, two runtimes.

``LiteRTEngine`` runs the exported ``.tflite`` file with Google's LiteRT: it
imports in a fraction of a second and needs no TensorFlow, so it is the default
for the CLI, the server and the Docker image. ``TensorFlowEngine`` runs the Keras
model; it is there for training machines and as the reference the exported model
is checked against (they agree to 1e-3 on every output, tests prove it).

An engine runs one exported model: a one-stage model, or one stage of a two-stage
model (``stage``: the finder or the judge). Both runtimes take a batch of ``uint8``
RGB images, shape ``(N, H, W, 3)``, and ``run`` returns the model's whole output,
batch first: for a one-stage model ``p_open`` per image (letterboxed squares), for
the finder a grid of top scores, log sizes and offsets per photo (letterboxed, or
padded only to a multiple of its stride where it takes any size), for the judge
class probabilities per crop. ``predict`` is ``run`` flattened to
``(N,)``: a one-stage model's ``p_open`` for each image.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from bottlecheck.artifact import ModelArtifact, ModelError

ENGINE_CHOICES = ("auto", "litert", "tensorflow")


class Engine(Protocol):
    name: str
    preferred_batch: int  # the batch size this runtime is fastest at on a CPU

    def predict(self, images: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 images in, ``(N,)`` float32 out: ``p_open`` for a one-stage model."""

    def run(self, images: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 images in, the model's whole output (batch first) out."""

    def replica(self) -> Engine | None:
        """The same model in a new single-threaded engine, for one more thread of the batch pipeline.

        ``None`` where the runtime does better with its own thread pool (TensorFlow).
        """


#: Where a container's CPU limit is read (cgroup v2 ``cpu.max``, else v1's CFS quota).
CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask, capped by its cgroup's CPU limit, rounded up.

    A pod with ``limits.cpu: 2`` on a 32-core node sees 32 CPUs in its affinity mask; one model
    copy per CPU would then be 32 copies (about 35 MB each) for 2 CPUs of time.
    """
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, math.ceil(limit))
    return max(1, count)


def cgroup_cpu_limit(root: Path | None = None) -> float | None:
    """CPUs' worth of time this process's cgroup may use (``docker --cpus``, a pod's CPU limit), or None."""
    root = CGROUP_ROOT if root is None else root
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


#: The line LiteRT's C++ logging prints, once a process, when it first creates its CPU delegate.
DELEGATE_LINE = "XNNPACK delegate"
_native_stderr_lock = threading.Lock()
_delegate_announced = False


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Hide the line the runtime's C++ logging prints at its first allocation ("Created ... XNNPACK delegate").

    It writes to file descriptor 2 directly, below Python's ``sys.stderr``, and only once a
    process. Hiding it means pointing the process's descriptor 2 elsewhere for a moment, which
    pipeline threads allocating at once used to do together: one saved the other's stand-in and
    restored it, and the process (a library caller's too) lost its stderr for good. So descriptor
    2 is swapped under one lock, and only until the line has been seen: from then on this is a
    no-op and no thread touches it. Anything else caught meanwhile is written back to stderr.
    """
    global _delegate_announced
    if _delegate_announced:
        yield
        return
    with _native_stderr_lock:
        if _delegate_announced:  # another thread saw it while this one waited
            yield
            return
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all
            yield
            return
        with tempfile.TemporaryFile() as caught:
            os.dup2(caught.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                caught.seek(0)
                lines = caught.read().decode(errors="replace").splitlines(keepends=True)
                _delegate_announced = any(DELEGATE_LINE in line for line in lines)
                other = "".join(line for line in lines if DELEGATE_LINE not in line)
                if other:
                    sys.stderr.write(other)
                    sys.stderr.flush()


class LiteRTEngine:
    name = "litert"
    # XNNPACK on a CPU gains nothing from big batches: activations outgrow the cache. Measured
    # here (2 cores, a whole-photo model), inference alone, images/s: batch 1: 265, 4: 261, 8: 254,
    # 32: 220, 64: 198. tops 2.2.0, two pipeline threads with their own engines, 1,000 1080x1920 JPEGs,
    # photos/s: batch 1: 145, 2: 153, 4: 152-159, 8: 145-149 (a core's 1 MB L2 holds a batch of 4).
    preferred_batch = 4

    def __init__(self, artifact: ModelArtifact, threads: int | None = None, stage: str | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError("the LiteRT engine needs the 'ai-edge-litert' package") from exc
        self._artifact, self._stage = artifact, stage
        path = artifact.file("tflite", stage)
        if not path.is_file():
            raise ModelError(f"missing exported model {path}")
        with _quiet_native_stderr():
            self._interpreter = Interpreter(model_path=str(path), num_threads=threads or usable_cpus())
        # Tensors (and XNNPACK's packed weights, ~30 MB for the judge) are allocated at the first
        # run: an engine that only hands out single-threaded copies to pipeline threads never runs.
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] = ()
        # An interpreter is not re-entrant: serialise calls from server threads.
        self._lock = threading.Lock()

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.run(images).reshape(-1)

    def run(self, images: np.ndarray) -> np.ndarray:
        batch = np.asarray(images, dtype=np.float32)
        if batch.ndim != 4 or len(batch) == 0:
            raise ValueError(f"expected a (N, H, W, 3) batch, got shape {batch.shape}")
        with self._lock:
            if batch.shape != self._shape:
                # A new batch size, or a new photo shape for a model that takes any (the finder):
                # measured, about 1.6 ms for the finder once its weights are packed. The first
                # allocation creates the XNNPACK delegate, which announces itself on stderr.
                with _quiet_native_stderr() if not self._shape else contextlib.nullcontext():
                    self._interpreter.resize_tensor_input(self._input, batch.shape, strict=False)
                    self._interpreter.allocate_tensors()
                self._shape = batch.shape
            self._interpreter.set_tensor(self._input, batch)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output).astype(np.float32)

    def replica(self) -> LiteRTEngine:
        # XNNPACK's two threads on one small model wait on each other and, beside the decoding
        # threads, on a busy core; one thread per interpreter, one interpreter per pipeline thread,
        # keeps both cores doing work (measured in BENCHMARKS.md section 1, 1080x1920 photos).
        return LiteRTEngine(self._artifact, threads=1, stage=self._stage)


class TensorFlowEngine:
    name = "tensorflow"
    preferred_batch = 32  # TensorFlow's per-call overhead is large: it needs batches

    def __init__(self, artifact: ModelArtifact, threads: int | None = None, stage: str | None = None):
        from bottlecheck.tfquiet import import_tensorflow

        try:
            tf = import_tensorflow()
            import keras
        except ImportError as exc:
            raise ModelError("the TensorFlow engine needs TensorFlow: pip install 'bottlecheck[train]'") from exc
        path = artifact.file("keras", stage)
        if not path.is_file():
            raise ModelError(f"missing Keras model {path}")
        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
            except RuntimeError:
                pass  # already initialised in this process
        import bottlecheck.layers  # noqa: F401  (registers the layers a saved model may use)

        self._model = keras.models.load_model(path, compile=False)
        self._call = tf.function(lambda x: self._model(x, training=False), reduce_retracing=True)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.run(images).reshape(-1)

    def run(self, images: np.ndarray) -> np.ndarray:
        batch = np.asarray(images, dtype=np.float32)
        if batch.ndim != 4 or len(batch) == 0:
            raise ValueError(f"expected a (N, H, W, 3) batch, got shape {batch.shape}")
        return np.asarray(self._call(batch)).astype(np.float32)

    def replica(self) -> None:
        return None  # TensorFlow's own thread pool already spreads a batch over the cores


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def load_engine(
    artifact: ModelArtifact, engine: str = "auto", threads: int | None = None, stage: str | None = None
) -> Engine:
    """Build the named engine (for one ``stage`` of a staged model); ``auto`` is LiteRT where installed."""
    if engine not in ENGINE_CHOICES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINE_CHOICES)}")
    if engine == "litert" or (engine == "auto" and litert_available()):
        return LiteRTEngine(artifact, threads, stage)
    return TensorFlowEngine(artifact, threads, stage)
