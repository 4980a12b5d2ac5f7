"""Edge TPU compile plumbing: a stand-in `edgetpu_compiler` on PATH, the report parser and the gate.

The real compiler exists only for x86-64 Debian-family Linux from Coral's repository; the
stand-in takes the same argv, prints the report in the compiler's format and writes a
``<name>_edgetpu.tflite`` whose graph is rewritten as the compiler does (mapped ops replaced by
one ``edgetpu-custom-op``).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from helpers import CALIBRATION_SIZE, one_line_error
from typer.testing import CliRunner

runner = CliRunner()

STAND_IN = r'''#!{python}
"""Stand-in for Coral's edgetpu_compiler: same argv, same report format, rewritten graph."""
import os
import sys
from pathlib import Path

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils as fb

args = sys.argv[1:]
if args[:2] != ["-s", "-o"] or len(args) != 4:
    sys.exit("usage: edgetpu_compiler -s -o OUT_DIR MODEL")
out, model = Path(args[2]), Path(args[3])
mode = os.environ.get("FAKE_EDGETPU_MODE", "all")
print("Edge TPU Compiler version 16.0.384591198")
print("Started a compilation timeout timer of 180 seconds.")
print()
if mode == "fail":
    print(f"Invalid model: {{model.name}}")
    print("Model not quantized")
    sys.exit(1)

m = fb.read_model_from_bytearray(bytearray(model.read_bytes()))
sg = m.subgraphs[0]
ops = list(sg.operators)
names = {{v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}}
op_names = [names[max(m.operatorCodes[o.opcodeIndex].builtinCode,
                      m.operatorCodes[o.opcodeIndex].deprecatedBuiltinCode)] for o in ops]
code = schema.OperatorCodeT()
code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
code.customCode = "edgetpu-custom-op"
code.version = 1
m.operatorCodes.append(code)


def tpu_op(inputs, outputs):
    op = schema.OperatorT()
    op.opcodeIndex = len(m.operatorCodes) - 1
    op.inputs, op.outputs = list(inputs), list(outputs)
    op.customOptions = list(b"EDGETPU-CACHED-PARAMETERS")
    return op


if mode == "all":  # everything mapped: one custom op from input to output
    sg.operators, cpu = [tpu_op(sg.inputs, sg.outputs)], []
elif mode == "cpu":  # the compiler gives up after the first op: the rest runs on the CPU
    sg.operators, cpu = [tpu_op(sg.inputs, ops[0].outputs)] + ops[1:], list(range(1, len(ops)))
else:  # "subgraphs": op 1 on the CPU splits the Edge TPU part in two
    sg.operators = [tpu_op(sg.inputs, ops[0].outputs), ops[1], tpu_op(ops[1].outputs, sg.outputs)]
    cpu = [1]
compiled = out / f"{{model.stem}}_edgetpu.tflite"
compiled.write_bytes(fb.convert_object_to_bytearray(m))
(out / f"{{model.stem}}_edgetpu.log").write_text("Edge TPU Compiler version 16.0.384591198\n")
rows = {{}}
for i, name in enumerate(op_names):
    if i not in cpu:
        status = "Mapped to Edge TPU"
    elif mode == "subgraphs" or i == cpu[0]:
        status = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
    else:
        status = "More than one subgraph is not supported"
    rows[(name, status)] = rows.get((name, status), 0) + 1
print("Model compiled successfully in 412 ms.")
print()
print(f"Input model: {{model}}")
print(f"Input size: {{model.stat().st_size / 1024:.2f}}KiB")
print(f"Output model: {{compiled}}")
print(f"Output size: {{compiled.stat().st_size / 1024:.2f}}KiB")
print("On-chip memory used for caching model parameters: 3.00KiB")
print("On-chip memory remaining for caching model parameters: 7.93MiB")
print("Off-chip memory used for streaming uncached model parameters: 0.00B")
print(f"Number of Edge TPU subgraphs: {{2 if mode == 'subgraphs' else 1}}")
print(f"Total number of operations: {{len(ops)}}")
print(f"Operation log: {{out / (model.stem + '_edgetpu.log')}}")
print()
if cpu:
    print("Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of "
          "the model will instead run on the CPU, which is slower. If possible, consider updating your model "
          "to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.")
    print(f"Number of operations that will run on Edge TPU: {{len(ops) - len(cpu)}}")
    print(f"Number of operations that will run on CPU: {{len(cpu)}}")
    print()
print("Operator                       Count      Status")
print()
for (name, status), count in rows.items():
    print(f"{{name:<31}}{{count:<11}}{{status}}")
print("Compilation child process completed within timeout period.")
print("Compilation succeeded!")
'''

REAL_REPORT = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 3173 ms.

Input model: yolov5s-int8-224.tflite
Input size: 7.37MiB
Output model: yolov5s-int8-224_edgetpu.tflite
Output size: 8.34MiB
On-chip memory used for caching model parameters: 6.08MiB
On-chip memory remaining for caching model parameters: 0.00B
Off-chip memory used for streaming uncached model parameters: 1.70MiB
Number of Edge TPU subgraphs: 2
Total number of operations: 294
Operation log: yolov5s-int8-224_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will \
instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported \
by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 289
Number of operations that will run on CPU: 5

Operator                       Count      Status

RESIZE_NEAREST_NEIGHBOR        2          Mapped to Edge TPU
CONCATENATION                  1          Operation is otherwise supported, but not mapped due to some unspecified \
limitation
CONCATENATION                  17         Mapped to Edge TPU
QUANTIZE                       2          More than one subgraph is not supported
CONV_2D                        62         Mapped to Edge TPU
Compilation child process completed within timeout period.
Compilation succeeded!
"""


@pytest.fixture()
def compiler_on_path(tmp_path, monkeypatch) -> Path:
    """A folder on PATH holding the stand-in edgetpu_compiler (python3 stays reachable)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "edgetpu_compiler"
    exe.write_text(STAND_IN.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "all")
    return exe


@pytest.fixture()
def no_compiler(tmp_path, monkeypatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def compile_cli(*args):
    from train.cli import app

    return runner.invoke(app, ["compile-edgetpu", *map(str, args)])


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_parse_report_of_the_real_compiler():
    from train.export.edgetpu_compile import parse_report

    r = parse_report(REAL_REPORT)
    assert r.compiler_version == "16.0.384591198" and r.compile_ms == 3173
    assert (r.num_subgraphs, r.total_ops, r.tpu_ops, r.cpu_ops) == (2, 294, 289, 5)
    assert r.on_chip_memory_used == "6.08MiB" and r.off_chip_memory_used == "1.70MiB"
    d = r.as_dict()
    assert d["off_chip_memory_used_bytes"] == round(1.70 * 2**20) and d["on_chip_memory_remaining_bytes"] == 0
    assert [(o.op, o.count, o.mapped) for o in r.operations] == [
        ("RESIZE_NEAREST_NEIGHBOR", 2, True), ("CONCATENATION", 1, False), ("CONCATENATION", 17, True),
        ("QUANTIZE", 2, False), ("CONV_2D", 62, True)]
    assert r.operations[3].status == "More than one subgraph is not supported"


def test_parse_report_rejects_other_output():
    from train.errors import TrainError
    from train.export.edgetpu_compile import parse_report

    with pytest.raises(TrainError, match="not the report"):
        parse_report("Segmentation fault\n")


def test_compile_adds_edgetpu_model_and_report(bundle, compiler_on_path):
    from edge.model.bundle import open_bundle
    from edge.model.tflite_file import read_tflite

    before = digest(bundle)
    result = compile_cli(bundle)
    assert result.exit_code == 0, result.output
    assert "16.0.384591198" in result.stdout and "Mapped to Edge TPU" in result.stdout
    graph = read_tflite(bundle / "model_edgetpu.tflite")
    assert graph.has_edgetpu_op and graph.op_counts == {"edgetpu-custom-op": 1}
    b = open_bundle(bundle)
    report = b.meta["edgetpu"]
    assert report["compiler_version"] == "16.0.384591198" and report["num_subgraphs"] == 1
    assert report["cpu_ops"] == 0 and report["tpu_ops"] == report["total_ops"] > 0
    assert report["on_chip_memory_used_bytes"] == 3072 and report["off_chip_memory_used_bytes"] == 0
    assert report["gate"] == {"passed": True, "problems": [], "overridden": False}
    assert b.meta["files"]["model_edgetpu.tflite"]["sha256"] == digest(bundle)["model_edgetpu.tflite"]
    after = digest(bundle)
    assert {k: v for k, v in after.items() if k not in ("model.json", "model_edgetpu.tflite")} == \
        {k: v for k, v in before.items() if k != "model.json"}
    assert not [p for p in bundle.iterdir() if p.name.startswith(".")]


def test_missing_compiler_is_one_line_and_leaves_bundle_intact(bundle, no_compiler):
    before = digest(bundle)
    line = one_line_error(compile_cli(bundle))
    assert "edgetpu_compiler is not installed" in line
    assert "apt-get install edgetpu-compiler" in line and "x86-64" in line
    assert digest(bundle) == before


@pytest.mark.parametrize(("mode", "problem"), [
    ("cpu", "op(s) after the Edge TPU part run on the CPU"),
    ("subgraphs", "2 Edge TPU subgraphs"),
])
def test_cpu_ops_fail_the_gate_unless_allowed(bundle, compiler_on_path, monkeypatch, mode, problem):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", mode)
    before = digest(bundle)
    failed = compile_cli(bundle)
    line = one_line_error(failed)
    assert problem in line and "--allow-cpu-ops" in line
    assert "unspecified limitation" in failed.stdout  # the compiler's table is shown
    assert digest(bundle) == before
    kept = compile_cli(bundle, "--allow-cpu-ops")
    assert kept.exit_code == 0, kept.output
    gate = json.loads((bundle / "model.json").read_text())["edgetpu"]["gate"]
    assert gate["passed"] is False and gate["overridden"] is True and any(problem in p for p in gate["problems"])


def test_cpu_tail_of_head_ops_passes():
    from train.export.edgetpu_compile import gate_problems, parse_report

    report = parse_report(REAL_REPORT.replace("subgraphs: 2", "subgraphs: 1"))
    assert gate_problems(report, (), ("FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"), True) == []
    assert gate_problems(report, ("CONV_2D",), (), True)[0].startswith("1 op(s) run on the CPU before")
    assert gate_problems(report, (), ("CONV_2D", "SOFTMAX"), True)


def test_compiler_failure_is_one_line(bundle, compiler_on_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "fail")
    line = one_line_error(compile_cli(bundle))
    assert "edgetpu_compiler failed (exit 1)" in line and "Model not quantized" in line


def test_not_a_bundle(tmp_path, compiler_on_path):
    assert "Model not found" in one_line_error(compile_cli(tmp_path / "nothing"))


def test_quantize_edgetpu_without_compiler_keeps_int8_bundle(quantized, tmp_path, monkeypatch):
    from edge.model.bundle import open_bundle
    from train.cli import app

    out = tmp_path / "tpu"
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.invoke(app, ["quantize", str(quantized["run"]), "--out", str(out), "--edgetpu",
                                 "--calibration-size", str(CALIBRATION_SIZE),
                                 "--calibration-dir", str(quantized["calibration"])])
    line = one_line_error(result)
    assert "int8 bundle" in line and "is complete" in line and "edgetpu_compiler is not installed" in line
    assert "PASSED" in result.stdout
    b = open_bundle(out)
    assert b.variant("int8") and not b.variant("edgetpu") and "edgetpu" not in b.meta


def test_quantize_with_edgetpu_compiles_and_verify_falls_back_to_cpu(quantized, tmp_path, compiler_on_path):
    from edge.cli import app as edge_app
    from edge.model.bundle import open_bundle
    from train.cli import app

    out = tmp_path / "tpu"
    result = runner.invoke(app, ["quantize", str(quantized["run"]), "--out", str(out), "--edgetpu",
                                 "--calibration-size", str(CALIBRATION_SIZE),
                                 "--calibration-dir", str(quantized["calibration"])])
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.stdout and "Mapped to Edge TPU" in result.stdout
    b = open_bundle(out)
    assert b.variant("edgetpu") and b.meta["edgetpu"]["gate"]["passed"]
    verified = runner.invoke(edge_app, ["verify", "--model", str(out)])  # auto: no Edge TPU here
    assert verified.exit_code == 0, verified.output
    assert "model.tflite on cpu" in verified.stdout and "checksum model_edgetpu.tflite: ok" in verified.stdout
