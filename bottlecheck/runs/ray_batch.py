"""``classify --ray``: the same classification as a Ray Data pipeline, for archives too big for one machine.

The pipeline has one stage that does work. Paths go in with ``from_items`` (the driver puts
them in the object store: no read tasks, so nothing upstream of the actors ever waits for a
CPU), and a pool of actors (``map_batches`` with ``ActorPoolStrategy``) each load the model
once and run bottlecheck's own batch pipeline on their share: the same loader (EXIF, pixel
bombs, JPEG draft mode), the same pipeline threads, the same rows. Rows come back to the
driver in input order (``preserve_order``) and go to the same writers as a local run, so
formats, ``--resume`` and exit codes do not change.

Workers load the model the driver loaded: the bundled model of their own install, or
``--model DIR`` at the same path (a shared mount, like the photos themselves). Each worker
checks the SHA-256 of what it loaded against the driver's and refuses to answer with other
weights (a node with another bottlecheck version, a stale copy).

A worker that dies is restarted by Ray and its batch is retried (Ray Data's actor defaults:
``max_restarts`` and ``max_task_retries`` unlimited); a corrupt photo is one error row, as
locally.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from bottlecheck.artifact import default_model_dir
from bottlecheck.classifier import Classifier
from bottlecheck.prediction import Prediction

INSTALL_HINT = "--ray needs Ray Data: pip install 'bottlecheck[ray]'"

#: Photos per task sent to an actor: large enough to amortise a task's overhead (a few ms),
#: small enough that a retried batch after a lost worker repeats little work.
DEFAULT_RAY_BATCH = 64


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


class ModelMismatch(RuntimeError):
    """A worker loaded other weights than the driver (another install, a stale model copy)."""


class ClassifyBatch:
    """The actor: loads the model once, then classifies a batch of paths per call."""

    def __init__(
        self,
        model_path: str | None,
        checksum: str,
        engine: str,
        threshold: float | None,
        batch_size: int | None,
        workers: int | None,
    ):
        self.classifier = Classifier.load(model_path, engine=engine, threshold=threshold, threads=threads_per_actor())
        if self.classifier.artifact.checksum != checksum:
            raise ModelMismatch(
                f"worker {socket.gethostname()} loaded {self.classifier.artifact.directory} "
                f"(sha256 {self.classifier.artifact.checksum[:12]}), not the driver's model (sha256 {checksum[:12]})"
            )
        self.batch_size = batch_size
        # One pipeline thread per CPU Ray gave the actor, not per CPU of the node it landed on.
        self.workers = workers or threads_per_actor()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        paths = [str(path) for path in batch["path"]]
        rows = [
            json.dumps(prediction.as_dict())
            for prediction in self.classifier.classify_paths(paths, batch_size=self.batch_size, workers=self.workers)
        ]
        return {"row": rows}


def threads_per_actor() -> int:
    """Threads inside one actor: the CPUs Ray gave it (Ray sets ``OMP_NUM_THREADS`` to that)."""
    return max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1))


def connect(address: str) -> None:
    """Start (``local``) or join (``auto``: ``RAY_ADDRESS`` or a running cluster; ``ray://host:port``) Ray."""
    try:
        import ray
        import ray.data  # noqa: F401  (the Data library is a separate extra of Ray)
    except ImportError:
        raise RayUnavailable(INSTALL_HINT) from None
    if ray.is_initialized():
        return
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # no per-run INFO lines on stderr
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
    if address == "local":
        # In-process cluster on this machine; a modest object store (paths and rows are small).
        kwargs.update(address="local", object_store_memory=256 * 1024 * 1024)
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailable(f"cannot reach Ray at {address!r}: {exc}".splitlines()[0]) from None


def actor_pool_size(cluster_cpus: float, cpus_per_actor: int) -> int:
    """How many actors to run: every CPU the cluster has, in whole actors, at least one.

    The deadlock to avoid is an actor pool holding every CPU while an upstream stage waits
    for one. Here nothing upstream needs a CPU (``from_items`` runs in the driver), so the
    pool may take them all; a pipeline that adds a stage before the actors must leave CPUs
    for it (``cpus_per_actor`` and this cap are the place).
    """
    return max(1, int(cluster_cpus // max(1, cpus_per_actor)))


def classify_on_ray(
    paths: list[str],
    classifier: Classifier,
    engine: str,
    batch_size: int | None = None,
    workers: int | None = None,
    cpus_per_actor: int = 2,
) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per path, in input order, computed by Ray actors.

    ``batch_size`` is images per model call inside an actor, as locally; ``workers`` its
    pipeline threads (default: one per CPU the actor holds); each actor is sent
    :data:`DEFAULT_RAY_BATCH` paths at a time.

    Call :func:`connect` first. ``classifier`` is the driver's own copy: the actors load the
    same model (checked by checksum) and use its threshold.
    """
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    if not paths:
        return
    context = DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False

    cluster_cpus = float(ray.cluster_resources().get("CPU", 1))
    cpus_per_actor = max(1, min(cpus_per_actor, int(cluster_cpus)))
    actors = min(actor_pool_size(cluster_cpus, cpus_per_actor), max(1, len(paths) // 8))
    artifact = classifier.artifact
    bundled = artifact.directory == default_model_dir().resolve()
    model_path = None if bundled else str(artifact.directory)
    dataset = ray.data.from_items([{"path": path} for path in paths]).map_batches(
        ClassifyBatch,
        fn_constructor_args=(model_path, artifact.checksum, engine, classifier.threshold, batch_size, workers),
        batch_size=DEFAULT_RAY_BATCH,
        compute=ActorPoolStrategy(min_size=1, max_size=actors),
        num_cpus=cpus_per_actor,
    )
    try:
        rows = iter(dataset.iter_rows())
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            yield _prediction(row)
    except ray.exceptions.RayError as exc:  # the cluster went away, a worker refused the model
        raise RayUnavailable(f"the Ray run failed: {exc}".splitlines()[0]) from None


def _prediction(row: dict[str, Any]) -> Prediction:
    return Prediction.from_row(json.loads(row["row"]))
