"""Compile a bundle's int8 model for the Coral Edge TPU with Coral's ``edgetpu_compiler``.

The compiler maps the longest possible run of supported int8 ops into one ``edgetpu-custom-op``;
whatever it cannot map runs on the CPU. Its report (version, subgraphs, per-operator status,
on-chip/off-chip memory) is parsed into ``model.json["edgetpu"]``, and the result is refused when
the model would not run mostly on the TPU.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.model.bundle import EDGETPU_FILE, MODEL_FILE, add_file, open_bundle
from edge.model.tflite_file import EDGETPU_CUSTOM_OP, read_tflite
from train.errors import TrainError

COMPILER = "edgetpu_compiler"
TIMEOUT_S = 600
MAPPED = "Mapped to Edge TPU"
# Ops that may stay on the CPU after the Edge TPU part: the classifier head, nothing heavier.
HEAD_OPS = frozenset({"MEAN", "AVERAGE_POOL_2D", "RESHAPE", "SQUEEZE", "FULLY_CONNECTED", "SOFTMAX",
                      "LOGISTIC", "QUANTIZE", "DEQUANTIZE"})
MAX_CPU_TAIL = 4
INSTALL_HINT = ("The compiler exists only for x86-64 Debian-family Linux and comes from Coral's own apt "
                "repository (coral-edgetpu-stable), not PyPI or Debian: add that repository and run "
                "`sudo apt-get install edgetpu-compiler` (see docs/quantization.md), or compile on such a "
                "machine with `train compile-edgetpu BUNDLE`.")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


@dataclass(frozen=True)
class OpStatus:
    op: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status == MAPPED


@dataclass(frozen=True)
class CompileReport:
    """The compiler's report, as printed with ``-s``."""

    compiler_version: str
    num_subgraphs: int
    total_ops: int | None
    tpu_ops: int
    cpu_ops: int
    operations: tuple[OpStatus, ...]
    compile_ms: int | None = None
    input_size: str | None = None
    output_size: str | None = None
    on_chip_memory_used: str | None = None
    on_chip_memory_remaining: str | None = None
    off_chip_memory_used: str | None = None
    model_path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["operations"] = [{"op": o.op, "count": o.count, "status": o.status, "mapped": o.mapped}
                           for o in self.operations]
        d.pop("model_path")
        for key in ("on_chip_memory_used", "on_chip_memory_remaining", "off_chip_memory_used"):
            d[f"{key}_bytes"] = to_bytes(d[key])
        return d


@dataclass(frozen=True)
class CompileResult:
    report: CompileReport
    cpu_before_tpu: tuple[str, ...]  # ops on the CPU before the Edge TPU part ends
    cpu_tail: tuple[str, ...]  # ops on the CPU after it (the last layers)
    problems: tuple[str, ...]
    allowed: bool  # written although problems were found (--allow-cpu-ops)

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**self.report.as_dict(), "placement": {"cpu_before_tpu": list(self.cpu_before_tpu),
                                                       "cpu_tail": list(self.cpu_tail)},
                "gate": {"passed": self.passed, "problems": list(self.problems), "overridden": self.allowed}}


class CompileRefused(TrainError):
    """The compiler ran but the result was refused; ``result`` holds the report to show."""

    def __init__(self, message: str, hint: str | None, result: CompileResult) -> None:
        super().__init__(message, hint)
        self.result = result


def to_bytes(text: str | None) -> int | None:
    m = re.fullmatch(r"([\d.]+)\s*(B|KiB|MiB|GiB)", (text or "").strip())
    return round(float(m.group(1)) * _UNITS[m.group(2)]) if m else None


def _find(pattern: str, text: str) -> str | None:
    m = re.search(pattern, text, re.MULTILINE)
    return m.group(1).strip() if m else None


def parse_report(text: str) -> CompileReport:
    """Parse the compiler's stdout; TrainError when it is not a compiler report."""
    version = _find(r"Edge TPU Compiler version (\S+)", text)
    subgraphs = _find(r"Number of Edge TPU subgraphs:\s*(\d+)", text)
    if version is None or subgraphs is None:
        raise TrainError("The Edge TPU compiler's output is not the report this tool reads "
                         f"(first line: {(text.strip().splitlines() or ['<empty>'])[0][:120]!r}).",
                         "Use edgetpu_compiler 16 or compatible.")
    ops, in_table = [], False
    for line in text.splitlines():
        if re.match(r"^Operator\s+Count\s+Status\s*$", line):
            in_table = True
            continue
        m = re.match(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$", line) if in_table else None
        if m:
            ops.append(OpStatus(m.group(1), int(m.group(2)), m.group(3)))
        elif in_table and ops and line.strip():
            in_table = False
    tpu = _find(r"Number of operations that will run on Edge TPU:\s*(\d+)", text)
    cpu = _find(r"Number of operations that will run on CPU:\s*(\d+)", text)
    total = _find(r"Total number of operations:\s*(\d+)", text)
    mapped = sum(o.count for o in ops if o.mapped)
    compile_ms = _find(r"Model compiled successfully in (\d+) ms", text)
    return CompileReport(
        compiler_version=version, num_subgraphs=int(subgraphs), total_ops=int(total) if total else None,
        tpu_ops=int(tpu) if tpu else mapped, cpu_ops=int(cpu) if cpu else sum(o.count for o in ops) - mapped,
        operations=tuple(ops), compile_ms=int(compile_ms) if compile_ms else None,
        input_size=_find(r"^Input size:\s*(\S+)", text), output_size=_find(r"^Output size:\s*(\S+)", text),
        on_chip_memory_used=_find(r"On-chip memory used for caching model parameters:\s*(\S+)", text),
        on_chip_memory_remaining=_find(r"On-chip memory remaining for caching model parameters:\s*(\S+)", text),
        off_chip_memory_used=_find(r"Off-chip memory used for streaming uncached model parameters:\s*(\S+)", text))


def compile_edgetpu(int8_model: Path, out_dir: Path, *, compiler: str = COMPILER,
                    timeout: float = TIMEOUT_S) -> CompileReport:
    """Run ``compiler -s -o out_dir model``; the parsed report, with the compiled file's path."""
    exe = shutil.which(compiler)
    if exe is None:
        where = "" if (platform.system(), platform.machine()) == ("Linux", "x86_64") else \
            f" (and this is {platform.system()} {platform.machine()})"
        raise TrainError(f"{compiler} is not installed{where}.", INSTALL_HINT)
    int8_model, out_dir = Path(int8_model), Path(out_dir)
    try:
        done = subprocess.run([exe, "-s", "-o", str(out_dir), str(int8_model)], check=True, timeout=timeout,
                              capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        raise TrainError(f"{compiler} did not finish within {timeout:.0f} s.", "Try again on a less busy machine.") \
            from None
    except subprocess.CalledProcessError as e:
        lines = [x for x in (e.stdout or "").splitlines() + (e.stderr or "").splitlines() if x.strip()]
        raise TrainError(f"{compiler} failed (exit {e.returncode}): {' / '.join(lines[-2:]) or 'no output'}.",
                         "The model must be a full-integer int8 TFLite model (see `edge info`).") from None
    except OSError as e:
        raise TrainError(f"Cannot run {exe}: {e.strerror}.", INSTALL_HINT) from None
    report = parse_report(done.stdout)
    compiled = out_dir / f"{int8_model.stem}_edgetpu.tflite"
    if not compiled.is_file():
        raise TrainError(f"{compiler} reported success but wrote no {compiled.name}.")
    return replace(report, model_path=compiled)


def placement(compiled: Path) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """(CPU ops before the last Edge TPU op, CPU ops after it, has an Edge TPU op) of a compiled file."""
    ops = read_tflite(compiled).operators
    tpu_at = [i for i, o in enumerate(ops) if o.op == EDGETPU_CUSTOM_OP]
    if not tpu_at:
        return tuple(o.op for o in ops), (), False
    last = tpu_at[-1]
    before = tuple(o.op for o in ops[:last] if o.op != EDGETPU_CUSTOM_OP)
    return before, tuple(o.op for o in ops[last + 1:]), True


def gate_problems(report: CompileReport, before: tuple[str, ...], tail: tuple[str, ...], has_tpu: bool) -> list[str]:
    problems = []
    if report.num_subgraphs != 1:
        problems.append(f"{report.num_subgraphs} Edge TPU subgraphs (the model would hop between TPU and CPU)")
    if not has_tpu:
        problems.append("no operation was mapped to the Edge TPU")
    elif before:
        problems.append(f"{len(before)} op(s) run on the CPU before the Edge TPU part ends ({', '.join(before[:4])})")
    heavy = [op for op in tail if op not in HEAD_OPS]
    if has_tpu and (heavy or len(tail) > MAX_CPU_TAIL):
        problems.append(f"{len(tail)} op(s) after the Edge TPU part run on the CPU "
                        f"({', '.join(heavy[:4] or tail[:4])}): more than the last layers")
    return problems


def compile_bundle(bundle: str | Path, *, allow_cpu_ops: bool = False, compiler: str = COMPILER) -> CompileResult:
    """Compile BUNDLE/model.tflite and add model_edgetpu.tflite + model.json["edgetpu"] to the bundle."""
    try:
        b = open_bundle(Path(bundle))
    except EdgeError as e:
        raise TrainError(e.message, e.hint) from None
    if b.root is None:
        raise TrainError(f"{bundle} is not a bundle folder.", "Pass the folder `train quantize --out` wrote.")
    with tempfile.TemporaryDirectory(prefix="skin-edge-edgetpu-") as tmp:
        report = compile_edgetpu(b.root / MODEL_FILE, Path(tmp), compiler=compiler)
        before, tail, has_tpu = placement(report.model_path)
        problems = tuple(gate_problems(report, before, tail, has_tpu))
        result = CompileResult(report, before, tail, problems, allowed=bool(problems) and allow_cpu_ops)
        if problems and not allow_cpu_ops:
            raise CompileRefused(f"The Edge TPU would not run most of the model: {'; '.join(problems)}.",
                             f"{EDGETPU_FILE} was not written (the int8 bundle is unchanged); pass "
                             "--allow-cpu-ops to keep it anyway.", result)
        add_file(b.root, EDGETPU_FILE, report.model_path, {"edgetpu": result.as_dict()})
    return result
