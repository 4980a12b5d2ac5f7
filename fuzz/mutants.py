"""Models that lie about their structure, built through the TFLite schema's object API: each is a
known way to crash, hang or fool the native interpreter. Used by tests/test_hostile_models.py and by
fuzz/adversarial.py (needs TensorFlow's flatbuffer_utils, the train extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mutant(src: Path, dest: Path, change) -> Path:
    """Rewrite a model through the TFLite schema's object API with ``change(model)`` applied."""
    from tensorflow.lite.tools import flatbuffer_utils as fb

    model = fb.read_model(str(src))
    change(model)
    fb.write_model(model, str(dest))
    return dest


def _constant_input(m) -> None:
    sg = m.subgraphs[0]
    tensor = sg.tensors[sg.inputs[0]]
    from tensorflow.lite.python import schema_py_generated as schema

    buf = schema.BufferT()
    buf.data = np.zeros(int(np.prod(tensor.shape)), np.uint8)
    m.buffers.append(buf)
    tensor.buffer = len(m.buffers) - 1


def _weights_short(m) -> None:
    for tensor in m.subgraphs[0].tensors:
        data = m.buffers[tensor.buffer].data
        if data is not None and len(data) > 16:
            m.buffers[tensor.buffer].data = data[: len(data) // 2]
            return


def _huge_tensor(m) -> None:
    sg = m.subgraphs[0]
    sg.tensors[sg.operators[0].outputs[0]].shape = np.array([1, 40000, 40000, 8], np.int32)


def _writes_constant(m) -> None:
    sg = m.subgraphs[0]
    weights = next(i for i, t in enumerate(sg.tensors) if m.buffers[t.buffer].data is not None)
    sg.operators[-1].outputs = np.array([weights], np.int32)


def _per_channel_mismatch(m) -> None:
    for t in m.subgraphs[0].tensors:
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale) > 1:
            q.quantizedDimension = 3 if q.quantizedDimension == 0 else 0
            return
    raise AssertionError("no per-channel tensor")


MUTANTS = {
    "constant input": (_constant_input, "input tensor 0 carries constant data"),
    "tensor index past the end": (lambda m: setattr(m.subgraphs[0].operators[0], "inputs",
                                                    np.array([0, 999, 1], np.int32)), "input 999 is not one of"),
    "output index -1": (lambda m: setattr(m.subgraphs[0], "outputs", np.array([-1], np.int32)),
                        "output -1 is not one of its"),
    "operator code past the end": (lambda m: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 77),
                                   "uses operator code 77 of"),
    "weights cut short": (_weights_short, "bytes of data where its shape"),
    "a tensor of 12 GiB": (_huge_tensor, "its tensors need 11.9 GiB"),
    "an operator writing into constant data": (_writes_constant, "which holds constant data"),
    "buffer index past the end": (lambda m: setattr(m.subgraphs[0].tensors[2], "buffer", 4096), "uses buffer 4096"),
    "negative dimension": (lambda m: setattr(m.subgraphs[0].tensors[3], "shape", np.array([1, -5, 3, 8], np.int32)),
                           "has the shape [1, -5, 3, 8]"),
    "per-channel quantization on the wrong axis": (_per_channel_mismatch, "per-channel quantization"),
}
