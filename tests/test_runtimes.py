"""The TFLite runtimes a Pi user can end up with, each in a venv of its own, running the device commands.

- LiteRT 2.x (``ai-edge-litert``, the default): the rest of the suite.
- ``tflite-runtime`` 2.14 with numpy<2: the Edge TPU fallback docs/deploy-pi.md mentions.
- LiteRT 1.4: the last 1.x.

The venvs hold only the device side's dependencies (never TensorFlow) and run this source tree;
the bundle is built once with TensorFlow by the session's fixture and shared. They are kept in
``$SKIN_EDGE_RUNTIMES`` (default ~/.cache/skin-edge/runtimes) between runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from conftest import LABELS, colour_image

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SKIN_EDGE_RUNTIMES", Path.home() / ".cache" / "skin-edge" / "runtimes"))
RUNTIMES = {
    "tflite-runtime-2.14": (["tflite-runtime==2.14.0", "numpy<2"], "tflite_runtime", "tflite-runtime 2.14.0"),
    "litert-1.4": (["ai-edge-litert==1.4.0"], "ai_edge_litert", "ai-edge-litert 1.4.0"),
}

pytestmark = pytest.mark.slow


def _device_dependencies() -> list[str]:
    """pyproject.toml's dependencies without the default runtime (each venv brings its own)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = text[text.index("dependencies = [") : text.index("]", text.index("dependencies = ["))]
    deps = re.findall(r'"([^"]+)"', block)
    return [d for d in deps if not d.startswith("ai-edge-litert")]


def _venv(name: str) -> Path:
    pins, _, _ = RUNTIMES[name]
    wanted = pins + _device_dependencies()
    key = hashlib.sha256(json.dumps(wanted).encode()).hexdigest()[:10]
    venv = CACHE / f"{name}-{key}"
    if (venv / "bin" / "python").exists():
        return venv
    tmp = CACHE / f"{name}-{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True, capture_output=True)
    done = subprocess.run([str(tmp / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           *wanted], capture_output=True, text=True)
    if done.returncode:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"cannot install {name}: {done.stderr[-1500:]}")
    tmp.rename(venv)  # the venv's scripts name tmp/, but this one runs only `python -m`
    return venv


@pytest.fixture(scope="module", params=sorted(RUNTIMES))
def runtime(request):
    name = request.param
    venv = _venv(name)
    _, module, version = RUNTIMES[name]

    def edge(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SKIN_EDGE_RUNTIME": module}
        return subprocess.run([str(venv / "bin" / "python"), "-m", "edge", *map(str, args)], capture_output=True,
                              text=True, timeout=300, cwd=ROOT, env=env, check=False)

    edge.version = version  # type: ignore[attr-defined]
    return edge


@pytest.fixture(scope="module")
def bundle(keras_model, tmp_path_factory) -> Path:
    from helpers import build_quantized

    return build_quantized(keras_model, tmp_path_factory)["bundle"]


def test_info_and_verify(runtime, bundle):
    info = runtime("info", bundle, "--json")
    assert info.returncode == 0, info.stderr[-2000:]
    data = json.loads(info.stdout)
    assert data["runtime"] == runtime.version and data["loads_on_cpu"] is True and data["image_classifier"]
    verify = runtime("verify", "--model", bundle, "--device", "cpu", "--threads", "1")
    assert verify.returncode == 0 and "verify: PASSED" in verify.stdout, verify.stdout + verify.stderr[-2000:]
    assert "Traceback" not in verify.stderr


def test_classify_and_run(runtime, bundle, tmp_path):
    files = []
    for name in LABELS:
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(colour_image(name, hw=(300, 400), seed=5), cv2.COLOR_RGB2BGR))
        files.append(path)
    done = runtime("classify", *files, "--model", bundle, "--device", "cpu", "--threads", "1", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    labels = [r["label"] for r in json.loads(done.stdout)["results"]]
    assert labels == list(LABELS) and json.loads(done.stdout)["runtime"] == runtime.version
    jsonl = tmp_path / "out.jsonl"
    run = runtime("run", "--model", bundle, "--source", tmp_path / "*.png", "--device", "cpu", "--threads", "1",
                  "--jsonl", jsonl, "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(jsonl.read_text().splitlines()) == len(LABELS)


def test_benchmark_and_doctor_say_when_int8_is_slow_on_this_runtime(runtime, bundle):
    bench = runtime("benchmark", "--model", bundle, "--device", "cpu", "--threads", "1", "--runs", "5")
    assert bench.returncode == 0, bench.stderr[-2000:]
    doctor = runtime("doctor", "--model", bundle, "--json")
    smoke = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "smoke")
    if runtime.version.startswith("tflite-runtime"):
        assert "has no fast int8 kernels" in bench.stderr and "pip install ai-edge-litert" in bench.stderr
        assert smoke["status"] == "warn" and "has no fast int8 kernels" in smoke["summary"], smoke
    else:
        assert "fast int8" not in bench.stderr + json.dumps(smoke)
