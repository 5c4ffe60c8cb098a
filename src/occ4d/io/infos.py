"""Info ``.pkl`` files, read through a restricted unpickler.

Info files come from other people's converters; full pickle would execute whatever a crafted
file asks. Only plain containers, scalars and NumPy arrays are allowed; every other global a
pickle names is refused with a DataError, so nothing in the file can run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from occ4d.core.errors import DataError
from occ4d.io.atomic import write_bytes

# (module, name) pairs a pickle may reference: NumPy's array and scalar reconstruction, and
# builtin containers. Nothing here can execute code on load.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    # Protocol-2 pickles written by Python 3 encode bytes as _codecs.encode(text, "latin1"),
    # a pure string-to-bytes function.
    ("_codecs", "encode"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("builtins", "range"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh, source: str):
        super().__init__(fh, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise DataError(
            self._source,
            f"refused to unpickle {module}.{name}: info files may hold only plain containers, "
            "numbers, strings and NumPy arrays",
        )


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` allowing only plain containers and NumPy arrays."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except Exception as e:  # truncated or corrupt pickles raise many types
        raise DataError(source, f"unreadable or truncated pickle ({type(e).__name__}: {e})") from e


def load_pkl(path: str | Path) -> Any:
    """Load an info ``.pkl`` through the restricted unpickler."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    return safe_loads(path.read_bytes(), str(path))


def save_pkl(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as a pickle atomically; it is re-read with the restricted unpickler first,
    so occ4d never writes an info file it would refuse to load."""
    data = pickle.dumps(obj, protocol=4)
    safe_loads(data, str(path))
    write_bytes(path, data)
