"""The golden inputs and outputs a bundle carries, so `edge verify` can prove a device computes the
same thing: a few test images, one class at a time, and model.tflite's raw outputs on the CPU."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.model.bundle import MODEL_FILE, sha256_file
from edge.model.verify import EDGETPU_TOLERANCE_STEPS, OTHER_RUNTIME_TOLERANCE_STEPS
from edge.ops.preprocess import pixel_probe

GOLDEN_COUNT = 8
GOLDEN_INPUTS, GOLDEN_OUTPUTS = "golden_inputs.npy", "golden_outputs.npy"


def golden_order(records: Sequence[Any], labels: Sequence[str]) -> list[int]:
    """Test indices taken one class at a time, so the golden set covers as many classes as it can."""
    by_class = [[i for i, r in enumerate(records) if r.label == label] for label in labels]
    order = []
    while len(order) < min(GOLDEN_COUNT, len(records)):
        for idx in by_class:
            if idx and len(order) < GOLDEN_COUNT:
                order.append(idx.pop(0))
    return order


def write_golden(tmp: Path, inputs: np.ndarray, outputs: np.ndarray, ids: list[str], qm: Any) -> dict:
    np.save(tmp / GOLDEN_INPUTS, inputs, allow_pickle=False)
    np.save(tmp / GOLDEN_OUTPUTS, outputs, allow_pickle=False)
    q = qm.spec.output.quantization

    def entry(name: str, a: np.ndarray) -> dict[str, Any]:
        return {"file": name, "sha256": sha256_file(tmp / name), "shape": list(a.shape), "dtype": a.dtype.name}

    return {"inputs": entry(GOLDEN_INPUTS, inputs), "outputs": entry(GOLDEN_OUTPUTS, outputs),
            "image_ids": ids, "inputs_are": "preprocessed RGB uint8 pixels (fit_to_input), fed via Model.prepare",
            "outputs_are": f"raw {qm.spec.output.dtype} outputs of {MODEL_FILE} on the CPU "
                           f"(scale {q.scale}, zero point {q.zero_point})",
            "tolerance": {"cpu": "exact", "cpu_other_runtime": {"max_abs_diff_steps": OTHER_RUNTIME_TOLERANCE_STEPS,
                                                                "top1": "same"},
                          "edgetpu": {"max_abs_diff_steps": EDGETPU_TOLERANCE_STEPS,
                                                      "top1": "same"}},
            "reference_runtime": f"{qm.runtime.name} {qm.runtime.version}",
            "reference_machine": platform.machine(),
            "pixels_sha256": pixel_probe(qm.spec.height, qm.spec.width),
            "pixels_are": "sha256 of edge.ops.preprocess.pixel_probe: fixed test cards through fit_to_input, "
                          "recomputed by `edge verify` on the device (the same pixels on every architecture)"}
