"""Describe a TFLite model or bundle: tensors, ops, Edge TPU ops, labels, checksums, runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from edge.backends.runtime import Runtime, get_runtime
from edge.errors import BundleError, EdgeError, ModelError
from edge.model.bundle import checksum_report, open_bundle
from edge.model.load import make_interpreter
from edge.model.spec import ModelSpec
from edge.model.tflite_file import (
    EDGETPU_CUSTOM_OP,
    TensorInfo,
    TFLiteFile,
    read_tflite,
)


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
    verdict: str  # one line: what this device can or cannot do with the model
    checksums: list[dict[str, Any]] = field(default_factory=list)
    loads: bool | None = None  # whether the CPU runtime builds it (None: not tried, see verdict)
    load_error: str | None = None
    classifier: bool | None = None  # an image classifier `edge classify` / `edge run` can use
    labels_fit: bool = True  # False: the labels given (or the bundle's) do not match the classifier's outputs
    lacks: tuple[str, ...] = ()  # what an older bundle does not carry (calibration, OOD data, maps)
    signature: str = "unsigned"  # signed or not, by which key, trusted here or not (edge.model.signing)

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
            "loads_on_cpu": self.loads, "load_error": self.load_error, "image_classifier": self.classifier,
            "verdict": self.verdict, "lacks": list(self.lacks), "signature": self.signature,
        }


class _Verdict(NamedTuple):
    text: str  # the one line
    loads: bool | None = None
    error: str | None = None
    classifier: bool | None = None
    labels_fit: bool = True


def _what_this_device_can_do(path: Path, graph: TFLiteFile, runtime: Runtime,
                             labels: tuple[str, ...] | None) -> _Verdict:
    other = [op for op in graph.custom_ops if op != EDGETPU_CUSTOM_OP]
    rt = f"{runtime.name} {runtime.version}"
    if other:
        error = f"uses custom ops that {runtime.name} lacks: {', '.join(other)}"
        return _Verdict(f"this device cannot run it: it {error}.", loads=False, error=error)
    if graph.has_edgetpu_op:
        return _Verdict("compiled for the Edge TPU: runs only with --device edgetpu (a Coral).")
    try:
        interpreter = make_interpreter(runtime, path, 1, None)
    except ModelError as e:
        return _Verdict(f"this device cannot run it: {e.message}", loads=False, error=e.message)
    try:
        spec = ModelSpec.from_interpreter(interpreter, path.name)
    except ModelError as e:
        return _Verdict(f"loads on this CPU ({rt}), but edge classify/run cannot use it: {e.message}",
                        loads=True, classifier=False)
    if labels is not None and len(labels) != spec.num_classes:
        return _Verdict(f"loads on this CPU ({rt}), but {len(labels)} labels do not fit {path.name}, which "
                        f"outputs {spec.num_classes} classes.", loads=True, classifier=True, labels_fit=False)
    return _Verdict(f"runs on this CPU ({rt}): an image classifier of {spec.width}x{spec.height} pixels.",
                    loads=True, classifier=True)


def inspect_model(path: str | Path, *, labels: str | Path | None = None) -> ModelInfo:
    """Describe any TFLite file (tensors, ops, custom ops, MACs) and say what this device can do with it.

    Only a file that is not a readable TFLite model (or a damaged bundle folder) raises.
    """
    bundle = open_bundle(path, labels=labels, verify=False)
    graph = read_tflite(bundle.model_path)
    runtime = get_runtime()
    verdict = _what_this_device_can_do(bundle.model_path, graph, runtime, bundle.labels)
    return ModelInfo(
        path=bundle.model_path, size_bytes=graph.size_bytes, runtime=f"{runtime.name} {runtime.version}",
        inputs=[_tensor_dict(graph.tensors[i]) for i in graph.inputs],
        outputs=[_tensor_dict(graph.tensors[i]) for i in graph.outputs],
        op_counts=graph.op_counts, custom_ops=graph.custom_ops, edgetpu=graph.has_edgetpu_op,
        mac_count=graph.mac_count(), labels=bundle.labels,
        bundle=str(bundle.root) if bundle.root else None, verdict=verdict.text,
        checksums=checksum_report(bundle) if bundle.root else [], loads=verdict.loads, load_error=verdict.error,
        classifier=verdict.classifier, labels_fit=verdict.labels_fit, lacks=_lacks(bundle),
        signature=_signature(bundle.root),
    )


def _signature(root: Path | None) -> str:
    from edge.model.signing import describe, trusted_keys  # noqa: PLC0415

    try:
        return describe(root, trusted_keys())
    except EdgeError as e:  # an unreadable key or signature: say so, `edge run` refuses it
        return e.message


def _lacks(bundle) -> tuple[str, ...]:  # noqa: ANN001
    if bundle.root is None:
        return ()
    try:
        return tuple(bundle.lacks())
    except BundleError as e:  # a broken temperature: say so here, `edge run` refuses it
        return (e.message,)
