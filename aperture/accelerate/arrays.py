"""Encoding NumPy arrays, bytes and lists of plain values faster, with Bokeh's exact output and ids.

A `ColumnDataChanged` or `ColumnsStreamed` event of a few numeric columns spends most of its
encoding time in Bokeh's generic array path, not in copying data: `transform_array` looks up
`np.ma` (a slow NumPy module `__getattr__`) for every array, `dtype.name` is computed in Python,
and every buffer id is made by `make_id`, which runs an import statement and reads the
`simple_ids` setting (environment and all) each time. `FastSerializer` uses the two functions
below; they give exactly what `Serializer._encode_ndarray` / `_encode_bytes` give:

* `encode_ndarray` handles only what Bokeh's `transform_array` returns unchanged and sends as
  binary: an exact `numpy.ndarray` (no subclass, so no masked array), not 0-d, C-contiguous, of
  a dtype in Bokeh's `BINARY_ARRAY_TYPES` (read at each call: no datetime, object, string or
  64-bit integer array). The representation is built with the same keys in the same order
  (`type`, `array`, `shape`, `dtype`, `order`) and the same buffer. Anything else, or a
  serializer or Bokeh module whose array functions were replaced, returns `NotImplemented`
  and Bokeh's own code encodes it.
* `encode_list` encodes a list as `Serializer._encode_list` does, item by item, except that an
  item of exact type `str`, `int` within Bokeh's safe range or finite `float` (for which no
  encoder is registered) is taken as is, as Bokeh's `encode` returns it: such an object has no
  children, so it can be neither a reference (only live models are; `id()` is checked anyway)
  nor a circular reference. Every other item goes through the serializer's `encode`. Streamed
  columns (`ColumnsStreamed` of lists) are mostly such items.
* `encode_bytes` is Bokeh's `_encode_bytes` with the buffer id made by `new_id`: while
  `bokeh.core.serialization.make_id` is Bokeh's own, the same id from the same counter under
  the same lock (`p<n>` with simple ids, else `make_globally_unique_id()`); the `simple_ids`
  setting is read once per serializer, at its first buffer (as `FastSerializer` reads
  `serialize_include_defaults` once), so a bad value raises there as Bokeh's `make_id` would.
"""

from __future__ import annotations

import sys
from math import isfinite
from typing import Any

import bokeh.core.serialization
import bokeh.util.serialization
from bokeh.core.serialization import Buffer, Serializer
from bokeh.core.types import ID

__all__ = ["encode_bytes", "encode_list", "encode_ndarray", "new_id"]

# The modules whose globals Bokeh's array and id code reads (typed loosely: not all are exported).
bokeh_serialization: Any = bokeh.core.serialization
bokeh_ids: Any = bokeh.util.serialization

_MAKE_ID = bokeh_ids.make_id
_TRANSFORM = bokeh_ids.transform_array
_CONVERT_DATETIME = bokeh_ids.convert_datetime_array
_DISABLED = bokeh_ids.array_encoding_disabled
_ENCODE_NDARRAY = Serializer._encode_ndarray
_ENCODE_LIST = Serializer._encode_list
_ENCODE = Serializer.encode
_ENCODE_INT = Serializer._encode_int
_ENCODE_FLOAT = Serializer._encode_float
_ENCODE_STR = Serializer._encode_str
_MAX_SAFE_INT = 2**53 - 1
_names: dict[Any, str] = {}


def _dtype_name(dtype: Any) -> str:
    name = _names.get(dtype)
    if name is None:
        name = _names[dtype] = dtype.name
    return name


def new_id(serializer: Any) -> ID:
    """What `bokeh.core.serialization.make_id()` returns, with the setting read once per serializer."""
    if bokeh_serialization.make_id is not _MAKE_ID:
        return ID(bokeh_serialization.make_id())
    simple = serializer.__dict__.get("_simple_ids")
    if simple is None:
        simple = serializer._simple_ids = bool(bokeh_ids.settings.simple_ids())
    if not simple:
        return ID(bokeh_ids.make_globally_unique_id())
    with bokeh_ids._simple_id_lock:
        bokeh_ids._simple_id += 1
        return ID(f"p{bokeh_ids._simple_id}")


def encode_bytes(serializer: Any, obj: bytes | memoryview) -> Any:
    """`Serializer._encode_bytes(obj)`."""
    buffer = Buffer(new_id(serializer), obj)
    data: Buffer | str
    if serializer._deferred:
        serializer._buffers.append(buffer)
        data = buffer
    else:
        data = buffer.to_base64()
    return {"type": "bytes", "data": data}


def encode_ndarray(serializer: Any, obj: Any) -> Any:
    """`Serializer._encode(obj)` for an array Bokeh sends unchanged as binary, else NotImplemented."""
    if (
        obj.ndim == 0
        or obj.dtype not in bokeh_ids.BINARY_ARRAY_TYPES
        or not obj.flags.c_contiguous
        or type(serializer)._encode_ndarray is not _ENCODE_NDARRAY
        or bokeh_serialization.transform_array is not _TRANSFORM
        or bokeh_ids.convert_datetime_array is not _CONVERT_DATETIME
        or bokeh_serialization.array_encoding_disabled is not _DISABLED
    ):
        return NotImplemented
    return {
        "type": "ndarray",
        "array": serializer._encode_bytes(obj.data),
        "shape": list(obj.shape),
        "dtype": _dtype_name(obj.dtype),
        "order": sys.byteorder,
    }


def encode_list(serializer: Any, obj: list[Any]) -> Any:
    """`Serializer._encode_list(obj)`, plain `str`, `int` and `float` items taken as they are."""
    encoders = serializer._encoders
    cls = type(serializer)
    if (
        float in encoders
        or int in encoders
        or str in encoders
        or cls.encode is not _ENCODE
        or cls._encode_list is not _ENCODE_LIST
        or cls._encode_int is not _ENCODE_INT
        or cls._encode_float is not _ENCODE_FLOAT
        or cls._encode_str is not _ENCODE_STR
        or bokeh_serialization._MAX_SAFE_INT != _MAX_SAFE_INT
    ):
        return serializer._encode_list(obj)
    references = serializer._references
    encode = serializer.encode
    result = []
    for item in obj:
        kind = type(item)
        if (
            kind is float
            and isfinite(item)
            or kind is int
            and -_MAX_SAFE_INT < item <= _MAX_SAFE_INT
            or kind is str
        ) and id(item) not in references:
            result.append(item)
        else:
            result.append(encode(item))
    return result
