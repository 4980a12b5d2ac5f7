"""Read the structure of a .tflite file without building an interpreter.

A TFLite model is a FlatBuffer. This reads the few tables we need (operator codes, tensors,
operators) with ``struct`` alone, so it works with any runtime, on models whose custom ops the
runtime cannot resolve (an Edge TPU model on a machine without the TPU), and on damaged files,
which it rejects with a clear error instead of handing them to native code.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from edge.errors import ModelError
from edge.model.tflite_check import check_model
from edge.util.files import read_capped

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
MODEL_MAX_BYTES = 1_000_000_000  # a MobileNetV2 is a few MB; the largest Edge TPU models are well under this

# TensorType enum of the TFLite schema (the part that matters for classifiers).
TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
    7: "int16", 8: "complex64", 9: "int8", 10: "float64", 12: "uint64", 13: "resource",
    14: "variant", 15: "uint32", 16: "uint16", 17: "int4",
}

# BuiltinOperator codes used by image classifiers; the full table is read from LiteRT when present.
_COMMON_OPS = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL",
    19: "RELU", 21: "RELU6", 22: "RESHAPE", 25: "SOFTMAX", 28: "TANH", 32: "CUSTOM", 34: "PAD",
    39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 43: "SQUEEZE", 49: "SPLIT", 53: "CAST",
    114: "QUANTIZE", 117: "HARD_SWISH",
}


@cache
def builtin_op_names() -> dict[int, str]:
    """Map BuiltinOperator codes to names, from LiteRT's generated schema when it is installed."""
    try:
        from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415
    except ImportError:
        return dict(_COMMON_OPS)
    ops = schema.BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: float = 0.0  # first (per-tensor) quantization scale; 0 when not quantized
    zero_point: int = 0
    per_channel: bool = False


@dataclass(frozen=True)
class OperatorInfo:
    op: str  # builtin name, or the custom code for CUSTOM ops
    custom: bool
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class TFLiteFile:
    """The parts of a .tflite FlatBuffer that describe its graph (first subgraph)."""

    path: Path | None
    size_bytes: int
    tensors: tuple[TensorInfo, ...]
    operators: tuple[OperatorInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    num_subgraphs: int

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(Counter(o.op for o in self.operators))

    @property
    def custom_ops(self) -> tuple[str, ...]:
        return tuple(sorted({o.op for o in self.operators if o.custom}))

    @property
    def has_edgetpu_op(self) -> bool:
        return EDGETPU_CUSTOM_OP in self.custom_ops

    def mac_count(self) -> int:
        """Multiply-accumulates of one inference: convolutions and fully connected layers."""
        total = 0
        for o in self.operators:
            if o.op not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(o.inputs) < 2:
                continue
            out = self.tensors[o.outputs[0]].shape
            weights = self.tensors[o.inputs[1]].shape
            n_out = _prod(out)
            if o.op == "CONV_2D" and len(weights) == 4:  # [out_c, kh, kw, in_c]
                total += n_out * weights[1] * weights[2] * weights[3]
            elif o.op == "DEPTHWISE_CONV_2D" and len(weights) == 4:  # [1, kh, kw, out_c]
                total += n_out * weights[1] * weights[2]
            elif o.op == "FULLY_CONNECTED" and len(weights) == 2:  # [out, in]
                total += n_out * weights[1]
        return total


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 1)
    return n


class _Reader:
    """Bounds-checked FlatBuffer table access."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def _unpack(self, fmt: str, pos: int):
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.buf):
            raise IndexError(pos)
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def field_pos(self, table: int, field: int) -> int | None:
        vtable = table - self._unpack("<i", table)
        vt_size = self._unpack("<H", vtable)
        slot = 4 + 2 * field
        if slot >= vt_size:
            return None
        off = self._unpack("<H", vtable + slot)
        return table + off if off else None

    def scalar(self, table: int, field: int, fmt: str, default=0):
        pos = self.field_pos(table, field)
        return default if pos is None else self._unpack(fmt, pos)

    def ref(self, table: int, field: int) -> int | None:
        pos = self.field_pos(table, field)
        return None if pos is None else pos + self._unpack("<I", pos)

    def vector(self, table: int, field: int) -> tuple[int, int]:
        """(start of elements, length); (0, 0) when absent."""
        pos = self.ref(table, field)
        if pos is None:
            return 0, 0
        return pos + 4, self._unpack("<I", pos)

    def tables(self, table: int, field: int) -> list[int]:
        start, n = self.vector(table, field)
        return [start + 4 * i + self._unpack("<I", start + 4 * i) for i in range(n)]

    def floats(self, table: int, field: int) -> tuple[float, ...]:
        start, n = self.vector(table, field)
        return tuple(self._unpack("<f", start + 4 * i) for i in range(n))

    def longs(self, table: int, field: int) -> tuple[int, ...]:
        start, n = self.vector(table, field)
        return tuple(self._unpack("<q", start + 8 * i) for i in range(n))

    def ints(self, table: int, field: int) -> tuple[int, ...]:
        start, n = self.vector(table, field)
        return tuple(self._unpack("<i", start + 4 * i) for i in range(n))

    def string(self, table: int, field: int) -> str:
        pos = self.ref(table, field)
        if pos is None:
            return ""
        n = self._unpack("<I", pos)
        if pos + 4 + n > len(self.buf):
            raise IndexError(pos)
        return self.buf[pos + 4 : pos + 4 + n].decode("utf-8", "replace")


def _tensor(r: _Reader, t: int) -> TensorInfo:
    scale, zero_point, per_channel = 0.0, 0, False
    q = r.ref(t, 4)  # QuantizationParameters: 2 scale, 3 zero_point
    if q is not None:
        scales, zero_points = r.floats(q, 2), r.longs(q, 3)
        if scales:
            scale, zero_point, per_channel = scales[0], (zero_points or (0,))[0], len(scales) > 1
    return TensorInfo(name=r.string(t, 3), dtype=TENSOR_TYPES.get(r.scalar(t, 1, "<b"), "unknown"),
                      shape=r.ints(t, 0), scale=scale, zero_point=zero_point, per_channel=per_channel)


def parse_tflite(data: bytes, path: Path | None = None) -> TFLiteFile:
    """Parse a TFLite FlatBuffer; raise ModelError when it is not one or is damaged."""
    where = f"{path}" if path else "the model"
    if len(data) < 8:
        raise ModelError(f"{where} is empty or truncated ({len(data)} bytes).",
                         "Copy the model file again.")
    if data[4:8] != b"TFL3":
        raise ModelError(f"{where} is not a TFLite model (no TFL3 identifier).",
                         "Pass a .tflite file or a model bundle folder.")
    r = _Reader(data)
    try:
        root = r._unpack("<I", 0)
        check_model(r, root, len(data), where)  # every index, size and shape, before native code
        names = builtin_op_names()
        codes = []
        for oc in r.tables(root, 1):
            code = max(r.scalar(oc, 0, "<b"), r.scalar(oc, 3, "<i"))
            custom = r.string(oc, 1)
            codes.append((names.get(code, f"BUILTIN_{code}"), custom))
        subgraphs = r.tables(root, 2)
        if not subgraphs:
            raise ModelError(f"{where} has no subgraph.", "Re-export the model.")
        sg = subgraphs[0]
        tensors = tuple(_tensor(r, t) for t in r.tables(sg, 0))
        operators = []
        for op in r.tables(sg, 3):
            name, custom = codes[r.scalar(op, 0, "<I")]
            is_custom = name == "CUSTOM"
            operators.append(OperatorInfo(op=custom if is_custom else name, custom=is_custom,
                                          inputs=r.ints(op, 1), outputs=r.ints(op, 2)))
        return TFLiteFile(path=path, size_bytes=len(data), tensors=tensors,
                          operators=tuple(operators), inputs=r.ints(sg, 1), outputs=r.ints(sg, 2),
                          num_subgraphs=len(subgraphs))
    except (IndexError, struct.error, UnicodeDecodeError):
        raise ModelError(f"{where} is damaged or truncated ({len(data)} bytes).",
                         "Copy the model file again.") from None


def read_tflite(path: Path) -> TFLiteFile:
    """Read and parse a model file, with clear errors for a missing or unreadable file."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"Model file not found: {path}.", "Check the path.")
    if path.is_dir():
        raise ModelError(f"{path} is a folder without model.tflite.", "Pass a bundle or a .tflite file.")
    try:
        data = read_capped(path, MODEL_MAX_BYTES, "model", ModelError)
    except OSError as e:
        raise ModelError(f"Cannot read {path}: {e.strerror}.", "Check its permissions.") from None
    return parse_tflite(data, path)
