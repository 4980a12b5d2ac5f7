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


def output_roles(shapes: list[tuple[int, ...]]) -> dict[str, int] | None:
    """Which output is which, from their shapes: ``scores`` (the class scores, [1, classes]), and
    optionally ``cam`` (class activation maps, [1, h, w, classes]) and ``features`` (the pooled
    features the scores are computed from, [1, D]; of two vectors the longer). None: not a classifier."""
    vectors = [i for i, s in enumerate(shapes) if len(s) in (1, 2)]
    maps = [i for i, s in enumerate(shapes) if len(s) == 4]
    if not 1 <= len(vectors) <= 2 or len(maps) > 1 or len(vectors) + len(maps) != len(shapes):
        return None
    vectors.sort(key=lambda i: shapes[i][-1])
    roles = {"scores": vectors[0]}
    if len(vectors) == 2:
        roles["features"] = vectors[1]
    if maps:
        if shapes[maps[0]][-1] != shapes[vectors[0]][-1]:
            return None
        roles["cam"] = maps[0]
    return roles


@dataclass(frozen=True)
class ModelSpec:
    """Input and output contract of a single-input image classifier: the class scores, and optionally
    its class activation maps and pooled features (see :func:`output_roles`)."""

    input: TensorSpec
    output: TensorSpec  # the class scores
    cam: TensorSpec | None = None
    features: TensorSpec | None = None

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
        specs = [TensorSpec.from_details(d) for d in outputs]
        roles = output_roles([s.shape for s in specs]) if len(inputs) == 1 else None
        if roles is None:
            raise ModelError(f"{where} is not an image classifier: it has {len(inputs)} inputs and "
                             f"{len(outputs)} outputs (expected 1 input; class scores, optionally with "
                             "activation maps and pooled features).")
        spec = cls(TensorSpec.from_details(inputs[0]), specs[roles["scores"]],
                   cam=specs[roles["cam"]] if "cam" in roles else None,
                   features=specs[roles["features"]] if "features" in roles else None)
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
