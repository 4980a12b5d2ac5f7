"""What a classifier model expects and returns, read from the interpreter (never hard-coded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.ops.preprocess import Quantization

INPUT_DTYPES = ("uint8", "int8", "float32")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization

    @classmethod
    def from_details(cls, d: dict[str, Any]) -> "TensorSpec":
        scale, zero_point = d.get("quantization", (0.0, 0))
        return cls(name=str(d["name"]), index=int(d["index"]),
                   shape=tuple(int(x) for x in d["shape"]), dtype=np.dtype(d["dtype"]).name,
                   quantization=Quantization(float(scale), int(zero_point)))

    def as_dict(self) -> dict[str, Any]:
        q = self.quantization
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "quantization": {"scale": q.scale, "zero_point": q.zero_point} if q.is_quantized else None}


@dataclass(frozen=True)
class ModelSpec:
    """Input and output contract of a single-input, single-output image classifier."""

    input: TensorSpec
    output: TensorSpec

    @property
    def height(self) -> int:
        return self.input.shape[1]

    @property
    def width(self) -> int:
        return self.input.shape[2]

    @property
    def channels(self) -> int:
        return self.input.shape[3]

    @property
    def num_classes(self) -> int:
        return self.output.shape[-1]

    @classmethod
    def from_interpreter(cls, interpreter: Any, where: str = "the model") -> "ModelSpec":
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{where} is not an image classifier: it has {len(inputs)} inputs and "
                             f"{len(outputs)} outputs (expected 1 and 1).")
        spec = cls(TensorSpec.from_details(inputs[0]), TensorSpec.from_details(outputs[0]))
        i, o = spec.input, spec.output
        if len(i.shape) != 4 or i.shape[0] != 1 or i.shape[3] != 3 or min(i.shape[1:3]) < 8:
            raise ModelError(f"{where} is not an image classifier: input shape {list(i.shape)} "
                             "is not [1, height, width, 3].")
        if i.dtype not in INPUT_DTYPES:
            raise ModelError(f"{where} is not an image classifier: input dtype {i.dtype} "
                             f"(expected one of {', '.join(INPUT_DTYPES)}).")
        if i.dtype != "float32" and not i.quantization.is_quantized:
            raise ModelError(f"{where} has a {i.dtype} input without quantization parameters.")
        if len(o.shape) not in (1, 2) or (len(o.shape) == 2 and o.shape[0] != 1) or o.shape[-1] < 2:
            raise ModelError(f"{where} is not an image classifier: output shape {list(o.shape)} "
                             "is not [1, classes].")
        return spec
