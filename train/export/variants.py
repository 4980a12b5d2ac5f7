"""More files of the same model for a bundle, checked to compute the same numbers (``edge.model.variants``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from edge.model.bundle import INT8IO_FILE, MODEL_FILE
from train.quiet import captured


def int8io_variant(convert: Callable[[], bytes], check: Callable[[Path, str], None], tmp: Path, seconds: dict,
                   inputs: np.ndarray, expected: np.ndarray) -> tuple[dict, tuple[str, ...]]:
    """model_int8io.tflite in ``tmp``: the int8 model converted again (``convert``) with int8 input and
    output, checked by ``check`` (integer-only) and on the golden ``inputs`` against model.tflite's
    raw outputs ``expected``.

    It lacks the QUANTIZE ops that model.tflite runs at its ends (uint8 <-> int8), which some
    runtimes execute outside their fast kernels. It is kept only when its raw outputs on every
    golden input are model.tflite's minus 128, i.e. the same numbers (``edge verify --variant
    int8io`` checks that again on the device); ``edge benchmark --all-variants`` tells whether it
    is faster here.
    """
    from edge.model.load import load_model  # noqa: PLC0415

    path = tmp / INT8IO_FILE
    t0 = time.perf_counter()
    path.write_bytes(convert())
    seconds["int8io"] = round(time.perf_counter() - t0, 2)
    check(path, "int8")
    with captured():  # the runtime announces its CPU delegate
        qm = load_model(path, device="cpu")
    got = np.stack([qm.invoke(qm.prepare(x)).reshape(-1) for x in inputs]).astype(np.int64) + 128
    differ = int(np.abs(got - expected.astype(np.int64)).max())
    if differ:
        path.unlink()
        return {}, (f"{INT8IO_FILE} was left out: its outputs differ from {MODEL_FILE}'s by up to {differ} steps "
                    "on the golden inputs.",)
    return {"int8io": {"file": INT8IO_FILE, "io": "int8", "same_outputs_as": MODEL_FILE,
                       "checked_on": f"{len(inputs)} golden inputs: raw outputs equal model.tflite's minus 128"}}, ()
