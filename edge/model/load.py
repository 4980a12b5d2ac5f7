"""A loaded classifier: runtime + (optional) Edge TPU delegate + spec + labels, built once."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends import edgetpu
from edge.backends.devices import default_threads, parse_device
from edge.backends.runtime import Runtime, get_runtime
from edge.errors import BundleError, ConfigError, DelegateError, ModelError, first_line
from edge.model.bundle import (
    LABELS_FILE,
    OOD_FILE,
    VARIANTS,
    Bundle,
    open_bundle,
    variant_of,
    verify_checksums,
)
from edge.model.sandbox import ensure_loadable
from edge.model.signing import PublicKey, check_trusted
from edge.model.spec import ModelSpec
from edge.model.tflite_file import TFLiteFile, read_tflite
from edge.model.variants import (
    DEFAULT,
    FASTEST,
    describe_choice,
    parse_variant,
    recorded_fastest,
)
from edge.ops.calibration import softmax_rows
from edge.ops.ood import OodModel, load_ood
from edge.ops.postprocess import Prediction, to_probabilities, top_k
from edge.ops.preprocess import dequantize, fit_to_input, quantize


@dataclass(frozen=True)
class Classification:
    top: tuple[Prediction, ...]
    probabilities: np.ndarray
    preprocess_ms: float
    invoke_ms: float
    postprocess_ms: float

    @property
    def best(self) -> Prediction:
        return self.top[0]


def _choose_file(bundle: Bundle, device: str, folder: bool, variant: str | None = None) -> tuple[Path, bool]:
    """(model file, wants the Edge TPU) for the requested device and variant.

    Only a bundle *folder* picks its file by device (the Edge TPU build under auto/edgetpu when
    it has one) or by ``variant``; a file named explicitly is the file that runs.
    """
    if variant is not None:
        path = bundle.variant(variant)
        if path is None:
            raise BundleError(f"{bundle.root} has no {VARIANTS[variant]} ({variant} variant).",
                              "Re-create the bundle with `train quantize`, or choose another --variant.")
        return path, variant == "edgetpu"
    tpu_file = bundle.variant("edgetpu")
    if folder and device in ("auto", "edgetpu") and tpu_file:
        return tpu_file, True
    return bundle.model_path, device == "edgetpu"


def make_interpreter(runtime: Runtime, path: Path, threads: int, delegate: Any) -> Any:
    if delegate is None:  # a file this runtime has not loaded here before: first in a child process
        ensure_loadable(Path(path), runtime)
    try:
        it = runtime.Interpreter(model_path=str(path), num_threads=threads,
                                 experimental_delegates=[delegate] if delegate else None)
        it.allocate_tensors()
        return it
    except (ValueError, RuntimeError) as e:
        detail = first_line(e)
        raise ModelError(f"{path} cannot be loaded by {runtime.name} {runtime.version}: {detail}.",
                         "Check the model was converted for TFLite builtins (see `edge info`).") from None


class Model:
    """A classifier ready to run. Build it with :func:`load_model`."""

    def __init__(self, *, bundle: Bundle, path: Path, interpreter: Any, spec: ModelSpec,
                 runtime: Runtime, device: str, threads: int, graph: TFLiteFile,
                 notes: tuple[str, ...] = (), ood: OodModel | None = None) -> None:
        self.bundle, self.path, self.interpreter, self.spec = bundle, path, interpreter, spec
        self.runtime, self.device, self.threads, self.graph, self.notes = runtime, device, threads, graph, notes
        self.ood = ood if spec.features is not None else None
        self.temperature = bundle.temperature or 1.0  # a broken one is refused here, at load
        self._logits = bundle.logits
        self.labels = bundle.labels
        self.names = bundle.display_names  # code -> full name, for every label
        self._pixel_scale, self._pixel_offset = bundle.pixel_scaling
        out_q = spec.output.quantization
        self._tolerance = max(0.02, spec.num_classes * out_q.scale) if out_q.is_quantized else 0.02

    @property
    def variant(self) -> str | None:
        """Which of the bundle's files runs (int8, int8io, float, edgetpu); None for a bare file."""
        if self.bundle.root is None or self.path.parent != self.bundle.root:
            return None
        return variant_of(self.path)

    def pixels(self, rgb: np.ndarray, *, bgr: bool = False) -> np.ndarray:
        """RGB uint8 frame of any size -> the (H, W, 3) uint8 image the model sees (centre crop, resize).
        ``bgr``: the frame is in OpenCV's order, as decoded; the same RGB image comes out."""
        return fit_to_input(rgb, self.spec.height, self.spec.width, bgr=bgr)

    def tensor(self, pixels: np.ndarray) -> np.ndarray:
        """The model's (H, W, 3) uint8 image -> input tensor (1, H, W, 3) in the model's dtype."""
        q = quantize(pixels, self.spec.input.quantization, self.spec.input.dtype,
                     self._pixel_scale, self._pixel_offset)
        return q[np.newaxis]

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 frame of any size -> input tensor (1, H, W, 3) in the model's dtype."""
        return self.tensor(self.pixels(rgb))

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run the model on a prepared input; the raw output (a copy)."""
        self.interpreter.set_tensor(self.spec.input.index, tensor)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.spec.output.index)

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """The class probabilities of a raw output: softmax(logits / temperature) for a bundle whose
        model outputs logits, else the model's own softmax (or a softmax of what it outputs)."""
        scores = self.logits(raw)
        if self._logits:
            return softmax_rows(scores, self.temperature).astype(np.float32)
        probs = to_probabilities(scores, self._tolerance)
        if self.temperature != 1.0:  # a temperature for softmax outputs: rescale the log-probabilities
            probs = softmax_rows(np.log(np.maximum(probs, 1e-7)), self.temperature).astype(np.float32)
        return probs

    def logits(self, raw: np.ndarray) -> np.ndarray:
        """A raw class-score output as float scores (the logits of a bundle that outputs logits)."""
        return dequantize(raw, self.spec.output.quantization).reshape(-1)

    def features(self) -> np.ndarray | None:
        """The pooled features of the last invoked image (float), None when the model has no such output."""
        f = self.spec.features
        return None if f is None else dequantize(self.interpreter.get_tensor(f.index), f.quantization).reshape(-1)

    def ood_score(self) -> float | None:
        """How unfamiliar the last invoked image is (``edge.ops.ood``); None without OOD data."""
        return None if self.ood is None else self.ood.score(self.features())

    def ood_check(self) -> tuple[float | None, bool]:
        """(the last invoked image's OOD score, whether it is above the bundle's threshold)."""
        score = self.ood_score()
        return score, score is not None and score > self.ood.threshold

    def cam(self, index: int) -> np.ndarray | None:
        """The class activation map (h, w) of class ``index`` for the last invoked image; None when
        the model has no maps."""
        c = self.spec.cam
        if c is None:
            return None
        maps = dequantize(self.interpreter.get_tensor(c.index), c.quantization)
        return np.asarray(maps, np.float32)[0, :, :, index]

    def classify(self, rgb: np.ndarray, k: int = 3, *, pixels: np.ndarray | None = None) -> Classification:
        """``pixels``: :meth:`pixels` of ``rgb`` when the caller has it already."""
        t0 = time.perf_counter_ns()
        tensor = self.tensor(self.pixels(rgb) if pixels is None else pixels)
        t1 = time.perf_counter_ns()
        raw = self.invoke(tensor)
        t2 = time.perf_counter_ns()
        probs = self.probabilities(raw)
        top = top_k(probs, k, self.labels, self.names)
        t3 = time.perf_counter_ns()
        return Classification(top, probs, (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6)


def _fastest(bundle: Bundle, mode: str, threads: int) -> tuple[str, str]:
    """(variant, the line saying why) for ``--variant fastest``; int8 when none was measured here."""
    rt = get_runtime()
    record = recorded_fastest(bundle, runtime=f"{rt.name} {rt.version}", threads=threads, device=mode)
    if record is None or bundle.variant(record["fastest"]) is None:
        return DEFAULT, describe_choice(DEFAULT, None)
    return record["fastest"], describe_choice(record["fastest"], record)


def slow_int8_note(version: str) -> str:
    """tflite-runtime (the Edge TPU fallback) runs int8 models on the CPU without XNNPACK."""
    return (f"tflite-runtime {version} has no fast int8 kernels on the CPU (XNNPACK never runs quantized models "
            "there): int8 runs many times slower than with ai-edge-litert. For the CPU, pip install "
            "ai-edge-litert; keep tflite-runtime only where LiteRT has no wheel (docs/deploy-pi.md).")


def load_model(path: str | Path, *, device: str = "auto", threads: int | None = None,
               labels: str | Path | None = None, verify: bool = True, variant: str | None = None,
               trusted: tuple[PublicKey, ...] = ()) -> Model:
    """Open a bundle or .tflite, pick the file for the device, build the interpreter once.

    ``device``: auto (a bundle folder's Edge TPU build on the Edge TPU when both are there, else
    the CPU, with a note), cpu, edgetpu, or a Coral device string (usb, usb:N, pci, pci:N).
    ``variant``: which of a bundle folder's files (``edge.model.variants``): int8, int8io, float,
    edgetpu, or ``fastest`` (the one ``edge benchmark --all-variants`` recorded on this device).
    ``trusted``: public keys; when given, only a bundle signed by one of them loads (edge.model.signing).
    """
    choice = parse_device(device)
    mode, tpu_device = choice.mode, choice.coral
    if trusted:
        if labels is not None:
            raise BundleError("--labels cannot replace a bundle's labels on a device that only runs signed "
                              "bundles: the signature covers the bundle's own labels.txt.", "Leave out --labels.")
        check_trusted(_bundle_root(Path(path)), trusted, str(path))
    bundle = open_bundle(path, labels=labels, verify=False)
    folder = Path(path).is_dir()
    variant = parse_variant(variant)
    if variant is not None and (not folder or bundle.root is None):
        raise ConfigError(f"--variant {variant} needs a bundle folder, not the file {bundle.model_path}.",
                          "Pass the bundle folder, or name the file you want to run.")
    threads = threads or default_threads()
    notes: list[str] = []
    if variant == FASTEST:
        variant, note = _fastest(bundle, mode, threads)
        notes.append(note)
    model_path, wants_tpu = _choose_file(bundle, mode, folder=folder, variant=variant)
    if bundle.root is not None and verify:
        verify_checksums(bundle, only=model_path)
        if labels is None and LABELS_FILE in (bundle.meta.get("files") or {}):  # listed by newer bundles
            verify_checksums(bundle, only=bundle.root / LABELS_FILE)
    graph = read_tflite(model_path)
    if mode == "auto" and graph.has_edgetpu_op:
        wants_tpu = True
    if mode == "cpu" and graph.has_edgetpu_op:
        raise ModelError(f"{model_path} is compiled for the Edge TPU and cannot run on the CPU.",
                         "Use --device edgetpu, or the bundle's model.tflite for the CPU.")
    runtime = get_runtime()
    delegate = None
    if wants_tpu:
        try:
            delegate = edgetpu.load_edgetpu_delegate(runtime.load_delegate, tpu_device)
        except DelegateError as e:
            fallback = bundle.root / "model.tflite" if bundle.root is not None else None
            if mode != "auto" or fallback is None or not fallback.is_file():
                raise
            notes.append(f"Edge TPU not available ({e.message}); running model.tflite on the CPU.")
            if verify:
                verify_checksums(bundle, only=fallback)
            model_path, graph = fallback, read_tflite(fallback)
        if delegate is not None and not graph.has_edgetpu_op:
            # The delegate would load and run nothing: the model runs on the CPU, and every result,
            # verify tolerance and benchmark row must say so.
            delegate = None
            compiled = bundle.variant("edgetpu")
            notes.append(f"{model_path.name} has no Edge TPU ops, so it runs on the CPU. "
                         + (f"Pass the bundle folder or {compiled.name} for the Edge TPU." if compiled
                            else "Compile it with `train compile-edgetpu` for the Edge TPU."))
    unknown = [op for op in graph.custom_ops if op != "edgetpu-custom-op"]
    if unknown:
        raise ModelError(f"{model_path} uses custom ops that {runtime.name} lacks: {', '.join(unknown)}.",
                         "Convert the model with TFLite builtin ops only.")
    interpreter = make_interpreter(runtime, model_path, threads, delegate)
    spec = ModelSpec.from_interpreter(interpreter, str(model_path))
    if bundle.labels is not None and len(bundle.labels) != spec.num_classes:
        raise BundleError(f"{len(bundle.labels)} labels but {model_path.name} outputs "
                          f"{spec.num_classes} classes.", "Use the labels.txt that came with the model.")
    used = "edgetpu" if delegate is not None else "cpu"
    if used == "cpu" and runtime.name == "tflite-runtime" and spec.input.dtype in ("uint8", "int8"):
        notes.append(slow_int8_note(runtime.version))
    if bundle.root is not None and model_path != bundle.model_path:  # the file that runs names the model
        bundle = replace(bundle, model_path=model_path)
    return Model(bundle=bundle, path=model_path, interpreter=interpreter, spec=spec, runtime=runtime,
                 device=used, threads=threads, graph=graph, notes=tuple(notes),
                 ood=_ood(bundle, spec, verify))


def _bundle_root(path: Path) -> Path | None:
    """The bundle folder ``path`` is or is in (None for a bare model file)."""
    if path.is_dir():
        return path
    return path.parent if (path.parent / "model.json").is_file() else None


def _ood(bundle: Bundle, spec: ModelSpec, verify: bool) -> OodModel | None:
    """The bundle's OOD model when it has one and the model outputs its features."""
    meta = bundle.meta.get("ood")
    if bundle.root is None or not isinstance(meta, dict) or spec.features is None:
        return None
    path = bundle.root / OOD_FILE
    if verify:
        verify_checksums(bundle, only=path)
    return load_ood(path, meta.get("threshold"), dims=spec.features.shape[-1])
