"""The same numbers on the Pi: the device side under an emulated aarch64 Raspberry Pi OS Bookworm.

scripts/aarch64.sh runs Debian bookworm arm64's Python 3.11 under qemu-user with the wheels a
Pi's pip picks (LiteRT, numpy, OpenCV for aarch64). The same bundle and image files go through
this machine's edge and the emulated one: every decoded pixel, model input and int8 output must
be identical, and edge info / verify / classify / run must work there as here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "aarch64.sh"
FORMATS = (".jpg", ".png", ".bmp", ".webp", ".tiff")

pytestmark = [pytest.mark.slow, pytest.mark.aarch64]


def _can_emulate() -> str | None:
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return "the aarch64 check emulates ARM on an x86-64 Linux host"
    if os.environ.get("SKIN_EDGE_AARCH64") and Path(os.environ["SKIN_EDGE_AARCH64"], "bookworm-arm64").is_dir():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "building the arm64 root filesystem needs root and apt (run scripts/test.sh as root)"
    return None


def emulated(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP": f"{sys.executable} -m pip", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT, check=False)


@pytest.fixture(scope="module")
def arm():
    why = _can_emulate()
    if why:
        pytest.skip(why)
    done = emulated("-c", "import platform; print(platform.machine())")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "aarch64"
    return emulated


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Sample lesion photographs (train sample-data's JPEGs) in five formats, at several sizes."""
    from edge.data.datasets import load_dataset
    from train.data.sample_data import make_sample_dataset

    data = tmp_path_factory.mktemp("sample") / "data"
    make_sample_dataset(data, n_lesions=21, size=(600, 450), seed=4)
    records = load_dataset(data).records
    folder = tmp_path_factory.mktemp("photos")
    paths = [shutil.copy(records[0].path, folder / f"{records[0].image_id}.jpg")]
    for i, (record, ext) in enumerate(zip(records[1:], FORMATS[1:])):
        bgr = cv2.imread(str(record.path))
        bgr = cv2.resize(bgr, (600 - 70 * i, 450 - 20 * i), interpolation=cv2.INTER_AREA)  # other sizes
        path = folder / f"{record.image_id}{ext}"
        assert cv2.imwrite(str(path), bgr), path
        paths.append(path)
    return [Path(p) for p in paths]


def _probe(run, bundle: Path, photos: list[Path]) -> dict:
    done = run(str(ROOT / "tests" / "arch_probe.py"), str(bundle), *map(str, photos))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _host(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_pixels_and_int8_outputs_are_identical_on_aarch64(arm, quantized_bundle, photos):
    here = _probe(_host, quantized_bundle, photos)
    there = _probe(arm, quantized_bundle, photos)
    assert here["machine"] == "x86_64" and there["machine"] == "aarch64"
    assert there["pixel_probe"] == here["pixel_probe"]
    for name, mine in here["images"].items():
        theirs = there["images"][name]
        assert theirs["decoded"] == mine["decoded"], f"{name}: decoding differs"
        assert theirs["pixels"] == mine["pixels"], f"{name}: preprocessing differs"
        assert theirs["raw"] == mine["raw"], f"{name}: int8 outputs differ"


def test_edge_commands_work_under_emulation(arm, quantized_bundle, photos, tmp_path):
    info = arm("-m", "edge", "info", str(quantized_bundle), "--json")
    assert info.returncode == 0, info.stderr[-2000:]
    assert json.loads(info.stdout)["loads_on_cpu"] is True
    verify = arm("-m", "edge", "verify", "--model", str(quantized_bundle), "--device", "cpu", "--threads", "1")
    assert verify.returncode == 0 and "PASSED" in verify.stdout, verify.stdout + verify.stderr[-2000:]
    args = ["-m", "edge", "classify", *map(str, photos), "--model", str(quantized_bundle), "--json", "--device",
            "cpu", "--threads", "1"]
    there, here = arm(*args), _host(*args)
    assert there.returncode == here.returncode == 0, there.stderr[-2000:]
    def labels(stdout: str) -> list[dict]:  # everything but the timing
        return [{k: v for k, v in r.items() if k != "time_ms"} for r in json.loads(stdout)["results"]]

    assert labels(there.stdout) == labels(here.stdout) and len(labels(here.stdout)) == len(photos)
    frames = [cv2.resize(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), (320, 240)) for p in photos for _ in range(3)]
    # Lossless FFV1: its frames decode to the same bytes everywhere. (A lossy MPEG-4 Part 2 file does
    # not: FFmpeg's IDCT differs between x86 and ARM, as that standard allows.)
    video = tmp_path / "visit.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 10, (320, 240))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    results = {}
    for name, run in (("here", _host), ("there", arm)):
        out = tmp_path / f"{name}.jsonl"
        done = run("-m", "edge", "run", "--model", str(quantized_bundle), "--source", str(video), "--no-realtime",
                   "--device", "cpu", "--threads", "1", "--jsonl", str(out), "--quiet")
        assert done.returncode == 0, done.stderr[-2000:]
        results[name] = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(results["there"]) == len(frames)
    keys = ("frame", "status", "reasons", "label", "score", "top_k", "raw_top_k")
    assert [{k: r[k] for k in keys} for r in results["there"]] == [{k: r[k] for k in keys} for r in results["here"]]


@pytest.fixture(scope="module")
def quantized_bundle(keras_model, tmp_path_factory) -> Path:
    from helpers import build_quantized

    return build_quantized(keras_model, tmp_path_factory)["bundle"]
