"""Models that lie about their structure are refused by the pure-Python check (edge.model.tflite_check)
before the native interpreter sees them: one line naming the defect, exit 1, never a crash."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError
from edge.model.tflite_file import parse_tflite, read_tflite

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
from mutants import MUTANTS, _constant_input  # noqa: E402
from mutants import mutant as _mutant


@pytest.fixture(scope="module")
def mutants(tflite_models, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mutants")
    return {name: _mutant(tflite_models["uint8"], folder / f"{i}.tflite", change)
            for i, (name, (change, _)) in enumerate(MUTANTS.items())}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_a_lying_model_is_refused_by_name(mutants, name):
    with pytest.raises(ModelError) as e:
        read_tflite(mutants[name])
    line = str(e.value)
    assert MUTANTS[name][1] in line and "malformed" in line and "\n" not in line


@pytest.fixture()
def lying_bundle(bundle) -> Path:
    """The quantized bundle with an input tensor given constant data, its checksum recomputed to
    match (a checksum is not authentication)."""
    import json

    from edge.model.bundle import file_entry

    model = bundle / "model.tflite"
    shutil.copyfile(_mutant(model, bundle / "lying.tflite", _constant_input), model)
    (bundle / "lying.tflite").unlink()
    meta = json.loads((bundle / "model.json").read_text())
    meta["files"]["model.tflite"] = file_entry(model)
    (bundle / "model.json").write_text(json.dumps(meta))
    return bundle


@pytest.mark.parametrize("command", [["info", "MODEL"], ["info", "BUNDLE"], ["classify", "IMAGE", "--model", "MODEL"],
                                     ["classify", "IMAGE", "--model", "BUNDLE"], ["verify", "--model", "BUNDLE"],
                                     ["benchmark", "--runs", "5", "--model", "MODEL"],
                                     ["run", "--source", "IMAGE", "--model", "BUNDLE"]])
def test_every_command_refuses_it_in_one_line_without_crashing(mutants, lying_bundle, colour_files, command):
    """In a child process: a native crash would be exit -11 there, not a failed assertion here."""
    where = {"IMAGE": str(colour_files["red"]), "MODEL": str(mutants["constant input"]), "BUNDLE": str(lying_bundle)}
    args = [where.get(a, a) for a in command]
    done = subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120)
    errors = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert len(errors) == 1 and "carries constant data" in errors[0] and "Traceback" not in done.stderr, done.stderr


def test_the_real_models_pass_the_check(tflite_models, quantized):
    for path in (*tflite_models.values(), *sorted(quantized["bundle"].glob("*.tflite"))):
        assert read_tflite(path).tensors


def test_random_damage_is_a_model_error_or_a_well_formed_model(tflite_models):
    """Bytes flipped anywhere: the reader answers ModelError or a model whose every index is in range,
    never another exception (IndexError, struct.error, RecursionError...)."""
    data = bytearray(tflite_models["uint8"].read_bytes())
    rng = np.random.default_rng(0)
    outcomes = {"refused": 0, "accepted": 0}
    for _ in range(400):
        mutant = bytearray(data)
        for pos in rng.integers(0, len(data), rng.integers(1, 6)):
            mutant[pos] = int(rng.integers(0, 256))
        try:
            graph = parse_tflite(bytes(mutant))
        except ModelError:
            outcomes["refused"] += 1
            continue
        outcomes["accepted"] += 1
        for op in graph.operators:
            assert all(-1 <= i < len(graph.tensors) for i in op.inputs)
            assert all(0 <= i < len(graph.tensors) for i in op.outputs)
        assert all(0 <= i < len(graph.tensors) for i in (*graph.inputs, *graph.outputs))
    assert outcomes["refused"] > 20 and outcomes["accepted"] > 20, outcomes


# ---------------------------------------------------------------- the first load, in a child process


@pytest.fixture()
def seen_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "seen-models.json"
    monkeypatch.setenv("SKIN_EDGE_SEEN_MODELS", str(path))
    return path


def test_a_model_that_crashes_the_runtime_is_one_error_not_a_dead_process(mutants, seen_file):
    """The constant-input model segfaults the interpreter (exit 139 in a bare script). Probed past the
    structural check, the crash stays in the child and comes back as one line."""
    from edge.backends.runtime import get_runtime
    from edge.model.sandbox import ensure_loadable

    with pytest.raises(ModelError) as e:
        ensure_loadable(mutants["constant input"], get_runtime())
    assert "crashed the runtime (SIGSEGV)" in str(e.value) and "separate process" in str(e.value)
    assert not seen_file.exists()  # never remembered as loadable


def test_a_good_model_is_probed_once_then_remembered(tflite_models, seen_file, monkeypatch):
    import edge.model.sandbox as sandbox
    from edge.backends.runtime import get_runtime

    sandbox.ensure_loadable(tflite_models["uint8"], get_runtime())
    assert len(json.loads(seen_file.read_text())) == 1

    def no_child(*args, **kwargs):
        raise AssertionError("probed again")

    monkeypatch.setattr(sandbox.subprocess, "run", no_child)
    sandbox.ensure_loadable(tflite_models["uint8"], get_runtime())  # remembered: no second child


def test_a_load_that_does_not_finish_is_stopped(tflite_models, seen_file, monkeypatch):
    import edge.model.sandbox as sandbox
    from edge.backends.runtime import get_runtime

    monkeypatch.setattr(sandbox, "TIMEOUT_S", 0.01)  # no Python starts that fast: the child is killed
    with pytest.raises(ModelError, match="did not finish in 0 s"):
        sandbox.ensure_loadable(tflite_models["float"], get_runtime())
