"""Check a .tflite file's structure before any native code sees it.

TensorFlow's security policy says it plainly: a model file is a program. The native interpreter
trusts the indices and sizes in the FlatBuffer; a model that lies about them (a tensor index past
the end, an input tensor with constant data, a shape that needs gigabytes) can crash it, hang it
or make it allocate without bound. This walks every subgraph, tensor, buffer and operator with the
bounds-checked reader of :mod:`edge.model.tflite_file` and refuses, in one line naming the defect,
anything outside what a well-formed classifier can contain:

- every tensor, buffer, operator-code and subgraph index in range (``-1`` only for an operator's
  optional inputs);
- no subgraph input, and no operator output, backed by constant data;
- each constant tensor's data exactly as large as its shape and type need, inside the file;
- shapes with non-negative dimensions; per-channel quantization consistent with its shape;
- at most :data:`MAX_TENSORS` tensors and :data:`MAX_OPERATORS` operators per subgraph, and
  tensors that need at most :data:`MAX_ARENA_BYTES` together (an upper bound of the arena).
"""

from __future__ import annotations

from typing import Any

from edge.errors import ModelError

MAX_SUBGRAPHS = 64
MAX_TENSORS = 50_000  # MobileNetV2 has about 180
MAX_OPERATORS = 50_000
MAX_BUFFERS = 100_000
MAX_RANK = 8
MAX_ARENA_BYTES = 2 << 30  # all non-constant tensors of a subgraph together; a 224 px MobileNetV2 needs ~60 MB

ITEM_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2}
_UNSIZED = {5, 13, 14}  # string, resource, variant: no fixed size per element
INT4 = 17
KNOWN_TYPES = set(ITEM_BYTES) | _UNSIZED | {INT4}


def check_model(r: Any, root: int, size: int, where: str) -> None:
    """Raise ModelError naming the first structural defect of the model at ``root``."""

    def bad(defect: str) -> ModelError:
        return ModelError(f"{where} is malformed: {defect}; it is refused before the runtime loads it.",
                          "Re-export the model, or copy the file again if it was damaged on the way.")

    n_codes = len(r.tables(root, 1))
    buffers = r.tables(root, 4)
    subgraphs = r.tables(root, 2)
    if len(subgraphs) > MAX_SUBGRAPHS or len(buffers) > MAX_BUFFERS:
        raise bad(f"{len(subgraphs)} subgraphs and {len(buffers)} buffers (at most {MAX_SUBGRAPHS} "
                  f"and {MAX_BUFFERS})")
    data_size = [_buffer_bytes(r, b, size, bad, i) for i, b in enumerate(buffers)]
    for g, sg in enumerate(subgraphs):
        tensors = r.tables(sg, 0)
        operators = r.tables(sg, 3)
        if len(tensors) > MAX_TENSORS or len(operators) > MAX_OPERATORS:
            raise bad(f"subgraph {g} has {len(tensors)} tensors and {len(operators)} operators "
                      f"(at most {MAX_TENSORS} and {MAX_OPERATORS})")
        constant = [_tensor_ok(r, t, i, len(buffers), data_size, bad) for i, t in enumerate(tensors)]
        arena = sum(need for need, const in constant if not const)
        if arena > MAX_ARENA_BYTES:
            raise bad(f"its tensors need {arena / 2**30:.1f} GiB (at most {MAX_ARENA_BYTES / 2**30:.0f} GiB)")
        for what, field in (("input", 1), ("output", 2)):
            for index in r.ints(sg, field):
                if not 0 <= index < len(tensors):
                    raise bad(f"subgraph {g}'s {what} {index} is not one of its {len(tensors)} tensors")
                if what == "input" and constant[index][1]:
                    raise bad(f"input tensor {index} carries constant data")
        for k, op in enumerate(operators):
            code = r.scalar(op, 0, "<I")
            if code >= n_codes:
                raise bad(f"operator {k} uses operator code {code} of {n_codes}")
            for index in r.ints(op, 1):
                if not (index == -1 or 0 <= index < len(tensors)):
                    raise bad(f"operator {k}'s input {index} is not one of the {len(tensors)} tensors")
            for index in r.ints(op, 2):
                if not 0 <= index < len(tensors):
                    raise bad(f"operator {k}'s output {index} is not one of the {len(tensors)} tensors")
                if constant[index][1]:
                    raise bad(f"operator {k} writes into tensor {index}, which holds constant data")
            for index in r.ints(op, 8):  # intermediates
                if not (index == -1 or 0 <= index < len(tensors)):
                    raise bad(f"operator {k} names tensor {index} of {len(tensors)}")


def _buffer_bytes(r: Any, b: int, size: int, bad: Any, i: int) -> int:
    """How many bytes of data buffer ``i`` holds (in the FlatBuffer, or after it at offset/size)."""
    start, n = r.vector(b, 0)
    if n and start + n > size:
        raise bad(f"buffer {i} runs past the end of the file")
    offset, length = r.scalar(b, 1, "<Q"), r.scalar(b, 2, "<Q")
    if offset > 1:  # data stored after the FlatBuffer (models over 2 GB)
        if offset + length > size:
            raise bad(f"buffer {i} points past the end of the file")
        return int(length)
    return n


def _tensor_ok(r: Any, t: int, i: int, n_buffers: int, data_size: list[int], bad: Any) -> tuple[int, bool]:
    """(bytes the tensor needs, whether it holds constant data), after checking it."""
    shape = r.ints(t, 0)
    kind = r.scalar(t, 1, "<b")
    if kind not in KNOWN_TYPES:
        raise bad(f"tensor {i} has an unknown type ({kind})")
    if len(shape) > MAX_RANK or any(d < 0 for d in shape):
        raise bad(f"tensor {i} has the shape {list(shape)}")
    buffer = r.scalar(t, 2, "<I")
    if buffer >= max(n_buffers, 1):
        raise bad(f"tensor {i} uses buffer {buffer} of {n_buffers}")
    count = 1
    for d in shape:
        count *= d
    need = (count + 1) // 2 if kind == INT4 else count * ITEM_BYTES.get(kind, 0)
    held = data_size[buffer] if buffer < len(data_size) else 0
    if held and kind not in _UNSIZED and r.ref(t, 6) is None and held != need:  # 6: sparsity
        raise bad(f"tensor {i} holds {held} bytes of data where its shape {list(shape)} needs {need}")
    q = r.ref(t, 4)
    if q is not None:
        scales, zeros = r.floats(q, 2), r.longs(q, 3)
        if scales and zeros and len(scales) != len(zeros):
            raise bad(f"tensor {i} has {len(scales)} quantization scales and {len(zeros)} zero points")
        if len(scales) > 1:
            axis = r.scalar(q, 6, "<i")
            if not 0 <= axis < len(shape) or shape[axis] != len(scales):
                raise bad(f"tensor {i}'s per-channel quantization ({len(scales)} scales on axis {axis}) "
                          f"does not fit its shape {list(shape)}")
    return need, held > 0
