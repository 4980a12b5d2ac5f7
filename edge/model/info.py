"""Describe a TFLite model or bundle: tensors, ops, Edge TPU ops, labels, checksums, runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.backends.runtime import get_runtime
from edge.errors import EdgeError
from edge.model.bundle import checksum_report, open_bundle
from edge.model.tflite_file import TensorInfo, read_tflite


def _tensor_dict(t: TensorInfo) -> dict[str, Any]:
    quant = {"scale": t.scale, "zero_point": t.zero_point, "per_channel": t.per_channel} if t.scale else None
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "quantization": quant}


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    size_bytes: int
    runtime: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    op_counts: dict[str, int]
    custom_ops: tuple[str, ...]
    edgetpu: bool
    mac_count: int
    labels: tuple[str, ...] | None
    bundle: str | None
    checksums: list[dict[str, Any]] = field(default_factory=list)
    loads: bool | None = None  # whether the CPU runtime builds it (None: Edge TPU model, not tried)
    load_error: str | None = None

    @property
    def checksums_ok(self) -> bool | None:
        return all(r["ok"] for r in self.checksums) if self.checksums else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.path), "size_bytes": self.size_bytes, "runtime": self.runtime,
            "inputs": self.inputs, "outputs": self.outputs, "op_counts": self.op_counts,
            "custom_ops": list(self.custom_ops), "edgetpu_custom_op": self.edgetpu,
            "mac_count": self.mac_count, "labels": list(self.labels) if self.labels else None,
            "bundle": self.bundle, "checksums": self.checksums, "checksums_ok": self.checksums_ok,
            "loads_on_cpu": self.loads, "load_error": self.load_error,
        }


def inspect_model(path: str | Path, *, labels: str | Path | None = None) -> ModelInfo:
    """Read a model's structure from the file itself, then try to build it on the CPU."""
    bundle = open_bundle(path, labels=labels, verify=False)
    graph = read_tflite(bundle.model_path)
    runtime = get_runtime()
    loads, error = None, None
    if not graph.has_edgetpu_op:
        from edge.model.load import load_model  # noqa: PLC0415

        try:
            load_model(bundle.model_path, device="cpu", threads=1, verify=False,
                       labels=labels if bundle.root is None else None)
            loads = True
        except EdgeError as e:
            loads, error = False, e.message
    return ModelInfo(
        path=bundle.model_path, size_bytes=graph.size_bytes, runtime=f"{runtime.name} {runtime.version}",
        inputs=[_tensor_dict(graph.tensors[i]) for i in graph.inputs],
        outputs=[_tensor_dict(graph.tensors[i]) for i in graph.outputs],
        op_counts=graph.op_counts, custom_ops=graph.custom_ops, edgetpu=graph.has_edgetpu_op,
        mac_count=graph.mac_count(), labels=bundle.labels,
        bundle=str(bundle.root) if bundle.root else None,
        checksums=checksum_report(bundle) if bundle.root else [], loads=loads, load_error=error,
    )
