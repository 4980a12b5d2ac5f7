"""`edge benchmark` on the tiny real models: JSON contract, statistics, --eval, bad input, --plot."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import LABELS, colour_image
from typer.testing import CliRunner

from edge.cli import app

runner = CliRunner()

MODEL_KEYS = {"model", "runtime", "device", "threads", "runs", "init_ms", "first_invoke_ms", "latency_ms",
              "throughput_per_s", "peak_rss_mb", "size_bytes", "mac_count", "gmac_per_s", "accuracy", "error"}
LATENCY_KEYS = {"mean", "std", "min", "p50", "p90", "p99", "max"}


def invoke(*args):
    return runner.invoke(app, ["benchmark", *[str(a) for a in args]])


def run_json(tmp_path, *args):
    out = tmp_path / "bench.json"
    result = invoke(*args, "--json", out)
    return result, (json.loads(out.read_text()) if out.exists() else None)


def _has_libedgetpu() -> bool:
    try:
        ctypes.CDLL("libedgetpu.so.1")
    except OSError:
        return False
    return True


@pytest.fixture()
def eval_dir(tmp_path) -> Path:
    """Class sub-folders of JPEGs, named after the tiny model's labels (as a user would lay them out)."""
    root = tmp_path / "eval"
    for name in LABELS:
        (root / name).mkdir(parents=True)
        for i in range(3):
            bgr = cv2.cvtColor(colour_image(name, hw=(90 + 10 * i, 120), seed=50 + i), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(root / name / f"{name}_{i}.jpg"), bgr)
    return root


@pytest.fixture()
def colour_video(tmp_path) -> Path:
    """A real MJPG video of 24 frames, 15 fps: the four colours in turn."""
    path = tmp_path / "colours.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (160, 120))
    for i in range(24):
        writer.write(cv2.cvtColor(colour_image(LABELS[(i // 6) % 4], seed=i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture()
def broken_model(tmp_path) -> Path:
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    return path


def test_json_contract_stats_and_ratios(tflite_models, tmp_path):
    result, data = run_json(tmp_path, "-m", tflite_models["float"], "-m", tflite_models["int8"],
                            "--runs", 30, "--warmup", 2, "--threads", 1)
    assert result.exit_code == 0, result.output
    assert {"machine", "runtime", "models"} <= set(data)
    assert {"cpu", "cores", "board", "governor", "load_average"} <= set(data["machine"])
    assert data["machine"]["cores"] >= 1 and data["machine"]["cpu"]
    assert data["runtime"]["name"] == "ai-edge-litert" and data["runtime"]["numpy"] == np.__version__
    assert data["runtime"]["opencv"] == cv2.__version__
    assert [m["model"] for m in data["models"]] == [str(tflite_models["float"]), str(tflite_models["int8"])]
    for m in data["models"]:
        assert set(m) == MODEL_KEYS
        assert set(m["latency_ms"]) == LATENCY_KEYS
        lat = m["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert lat["min"] <= lat["mean"] <= lat["max"] and lat["std"] >= 0
        assert m["runs"] == 30 and m["threads"] == 1 and m["device"] == "cpu" and m["error"] is None
        assert m["runtime"].startswith("ai-edge-litert ")
        assert m["init_ms"] > 0 and m["first_invoke_ms"] > 0 and m["peak_rss_mb"] > 10
        assert m["size_bytes"] == Path(m["model"]).stat().st_size
        assert m["mac_count"] > 0 and m["gmac_per_s"] > 0
        assert m["throughput_per_s"] == pytest.approx(1000 / lat["mean"], rel=0.01)
        assert m["accuracy"] is None
    # int8 weights are a quarter of float32's
    assert data["models"][1]["size_bytes"] < data["models"][0]["size_bytes"]
    # the table: both models, and the ratio to the first (1.00 for itself)
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("│ tiny_")]
    assert len(lines) == 2, result.stdout
    assert "speed-up" in result.stdout and "1.00x" in lines[0]
    assert "x" in lines[1].split("│")[-2]


def test_seconds_mode_and_bundle_variants(bundle_dir, tmp_path):
    result, data = run_json(tmp_path, "-m", bundle_dir, "--all-variants", "--seconds", 0.2, "--warmup", 0)
    assert result.exit_code == 0, result.output
    names = [Path(m["model"]).name for m in data["models"]]
    assert names == ["model_float.tflite", "model.tflite"]  # the bundle has no Edge TPU file: not a failure
    assert all(m["runs"] >= 2 for m in data["models"])
    assert "tiny:float" in result.stdout and "tiny:int8" in result.stdout


def test_explicit_missing_variant_fails_alone(bundle_dir, tmp_path):
    result, data = run_json(tmp_path, "-m", bundle_dir, "--variants", "int8,edgetpu", "--runs", 3)
    assert result.exit_code == 1
    ok, missing = data["models"]
    assert ok["error"] is None and ok["latency_ms"]["p50"] > 0
    assert "model_edgetpu.tflite" in missing["error"] and missing["latency_ms"] is None
    assert set(missing) == MODEL_KEYS
    assert "error: tiny:edgetpu:" in result.stderr and "train compile-edgetpu" in result.stderr


def test_eval_gives_accuracy_beside_speed(bundle_dir, eval_dir, tmp_path):
    result, data = run_json(tmp_path, "-m", bundle_dir, "--variants", "float,int8", "--runs", 3,
                            "--eval", eval_dir)
    assert result.exit_code == 0, result.output
    for m in data["models"]:
        acc = m["accuracy"]
        assert acc["images"] == 12 and acc["skipped"] == 0
        assert acc["accuracy"] == 1.0 and acc["balanced_accuracy"] == 1.0
        assert acc["melanoma_recall"] is None  # no "mel" class here
        assert set(acc["per_class_recall"]) == set(LABELS)
    assert "bal. acc." in result.stdout and "1.000" in result.stdout
    assert "12 images, 4 classes (folders layout" in result.stdout


def test_eval_counts_a_misclassified_image(bundle_dir, eval_dir, tmp_path):
    # a blue image filed under "red": recall of red drops to 3/4, the others stay at 1
    cv2.imwrite(str(eval_dir / "red" / "wrong.jpg"), cv2.cvtColor(colour_image("blue"), cv2.COLOR_RGB2BGR))
    (eval_dir / "green" / "broken.jpg").write_bytes(b"not a jpeg")
    result, data = run_json(tmp_path, "-m", bundle_dir, "--runs", 2, "--eval", eval_dir)
    assert result.exit_code == 0, result.output
    acc = data["models"][0]["accuracy"]
    assert acc["images"] == 13 and acc["skipped"] == 1
    assert acc["accuracy"] == pytest.approx(12 / 13, abs=1e-5)
    assert acc["per_class_recall"]["red"] == pytest.approx(0.75)
    assert acc["balanced_accuracy"] == pytest.approx((0.75 + 3) / 4)


def test_eval_with_unknown_classes_fails_per_model(tflite_models, bundle_dir, tmp_path):
    root = tmp_path / "other"
    for name in ("mel", "nv"):
        (root / name).mkdir(parents=True)
        cv2.imwrite(str(root / name / f"{name}.png"), colour_image("red"))
    result, data = run_json(tmp_path, "-m", bundle_dir, "-m", tflite_models["float"], "--runs", 2, "--eval", root)
    assert result.exit_code == 1
    errors = [m["error"] for m in data["models"]]
    assert "mel, nv are not among the labels" in errors[0]
    assert "needs class names" in errors[1] and "--labels" in errors[1]
    assert all(m["latency_ms"]["p50"] > 0 for m in data["models"])  # the speed figures still stand
    assert result.stdout.count("failed") == 4  # two accuracy cells per model (three with --wide)


def test_eval_folder_that_is_not_a_dataset(tflite_models, tmp_path):
    result = invoke("-m", tflite_models["float"], "--eval", tmp_path)
    assert result.exit_code == 1 and result.stderr.startswith("error: --eval: no dataset found")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, needle", [
    (("--runs", 0), "--runs must lie in 1..10,000,000 (got 0)"),
    (("--runs", 10**12), "--runs must lie in 1..10,000,000 (got 1,000,000,000,000)"),
    (("--runs", 5, "--seconds", 1), "--runs and --seconds are alternatives"),
    (("--seconds", 0), "--seconds must lie in (0, 3600]"),
    (("--seconds", "inf"), "--seconds must lie in (0, 3600] (got inf)"),
    (("--seconds", "nan"), "--seconds must lie in (0, 3600] (got nan)"),
    (("--warmup", 10**9), "--warmup must lie in 0..100,000"),
    (("--variants", "fp16"), "Unknown variant fp16"),
    (("--variants", "int8", "--all-variants"), "--variants and --all-variants are alternatives"),
])
def test_bad_plan_refused_in_one_line(tflite_models, args, needle):
    result = invoke("-m", tflite_models["float"], *args)
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("command", ["benchmark", "classify", "verify"])
def test_thread_counts_are_bounded(tflite_models, command):
    result = runner.invoke(app, [command, *(["-m"] if command == "benchmark" else []),
                                 *([str(tflite_models["float"])] if command != "verify" else []),
                                 *(["--model", str(tflite_models["float"])] if command != "benchmark" else []),
                                 "--threads", "1000000"])
    flat = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2 and "Invalid value for '--threads'" in flat and "less than or equal to 256" in flat, flat
    assert "Traceback" not in result.output


def test_broken_model_fails_alone(tflite_models, broken_model, tmp_path):
    missing = tmp_path / "nope.tflite"
    result, data = run_json(tmp_path, "-m", tflite_models["uint8"], "-m", broken_model, "-m", missing,
                            "-m", tflite_models["float"], "--runs", 5)
    assert result.exit_code == 1
    good, bad, gone, good2 = data["models"]
    for m in (good, good2):
        assert m["error"] is None and m["latency_ms"]["p50"] > 0
    for m in (bad, gone):
        assert m["error"] and m["latency_ms"] is None and set(m) == MODEL_KEYS
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 2 and str(broken_model) in errors[0] and "not found" in errors[1]
    assert "2 of 4 models failed" in result.stderr and "Traceback" not in result.output
    # the ratio column still compares with the first model that was measured
    assert "1.00x" in [ln for ln in result.stdout.splitlines() if ln.startswith("│ tiny_uint8")][0]


@pytest.mark.skipif(_has_libedgetpu(), reason="an Edge TPU runtime is installed here")
def test_edgetpu_without_runtime_one_line_per_model(tflite_models, bundle_dir, tmp_path):
    result, data = run_json(tmp_path, "-m", tflite_models["int8"], "-m", bundle_dir, "--device", "edgetpu",
                            "--runs", 2)
    assert result.exit_code == 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 2, result.stderr
    assert all("libedgetpu.so.1 is not installed" in e for e in errors)
    assert all(m["error"] and m["device"] == "edgetpu" for m in data["models"])


def test_input_image_and_plot(tflite_models, colour_files, tmp_path):
    png = tmp_path / "latency.png"
    result = invoke("-m", tflite_models["float"], "-m", tflite_models["uint8"], "--runs", 20,
                    "--input", colour_files["green"], "--plot", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(png))
    assert img.shape[0] > 100 and img.shape[1] >= 800
    assert (img < 250).any(axis=2).mean() > 0.01  # something was drawn


def test_plot_with_nothing_measured(broken_model, tmp_path):
    result = invoke("-m", broken_model, "--plot", tmp_path / "x.png")
    assert result.exit_code == 1 and not (tmp_path / "x.png").exists()
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and str(broken_model) in errors[0]  # the model's failure, not the plot's


def test_bad_input_image(tflite_models, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    result = invoke("-m", tflite_models["float"], "--input", bad)
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.output


def test_json_to_stdout(tflite_models):
    result = invoke("-m", tflite_models["uint8"], "--runs", 3, "--json", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["models"][0]) == MODEL_KEYS


def test_never_imports_tensorflow(bundle_dir, eval_dir, colour_video, tmp_path):
    code = (
        "import sys\n"
        "from edge.cli import app\n"
        f"for args in (['-m', {str(bundle_dir)!r}, '--all-variants', '--runs', '3', '--eval', {str(eval_dir)!r},\n"
        f"              '--plot', {str(tmp_path / 'p.png')!r}], ['-m', {str(bundle_dir)!r}, '--source', "
        f"{str(colour_video)!r}]):\n"
        "    try:\n"
        "        app(['benchmark', *args])\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'sklearn', 'matplotlib')]\n"
        "assert not heavy, heavy\n"
        "assert 'edge.data.datasets' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


# ---------------------------------------------------------------- library pieces


def test_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

    from edge.ops.metrics import score

    rng = np.random.default_rng(3)
    labels = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    y_true = rng.choice([0, 1, 2, 4, 5], 200)  # df and vasc absent: balanced accuracy ignores them
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 7, 200))
    s = score(y_true, y_pred, labels)
    assert s.accuracy == pytest.approx(accuracy_score(y_true, y_pred))
    with pytest.warns(UserWarning):  # scikit-learn warns about predicted classes absent from y_true
        expected = balanced_accuracy_score(y_true, y_pred)
    assert s.balanced_accuracy == pytest.approx(expected)
    assert s.melanoma_recall == pytest.approx(recall_score(y_true == 4, y_pred == 4))
    assert set(s.per_class_recall) == {"akiec", "bcc", "bkl", "mel", "nv"}


def test_latency_stats_order():
    from edge.bench.latency import LatencyStats

    s = LatencyStats.from_ns(np.array([3_000_000, 1_000_000, 2_000_000, 10_000_000]))
    assert s.count == 4 and s.min == 1.0 and s.max == 10.0 and s.p50 == 2.5 and s.mean == 4.0
    assert s.min <= s.p50 <= s.p90 <= s.p99 <= s.max


def test_cpu_model_and_machine_warnings():
    from edge.bench.machine import cpu_model, machine_warnings

    pi = "processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    assert cpu_model(pi) == "Raspberry Pi 4 Model B Rev 1.4"
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert machine_warnings("performance", (0.1, 0, 0), 5.0, 4) == ()
    w = machine_warnings("ondemand", (3.0, 0, 0), 80.0, 4)
    assert len(w) == 2 and "'ondemand', not 'performance'" in w[0]
    assert "load average 3.00 on 4 cores" in w[1] and "80% CPU" in w[1]


# ---------------------------------------------------------------- end to end, through the `edge run` pipeline

STAGES = {"capture", "quality", "preprocess", "invoke", "postprocess"}


def test_end_to_end_video(bundle_dir, broken_model, colour_video, tmp_path):
    result, data = run_json(tmp_path, "-m", bundle_dir, "--all-variants", "-m", broken_model,
                            "--source", colour_video)
    assert result.exit_code == 1  # the broken model fails alone
    assert data["source"] == str(colour_video) and "machine" in data
    flt, int8, bad = data["models"]
    for m in (flt, int8):
        assert m["error"] is None and m["device"] == "cpu" and m["ended"] == "end of source"
        assert m["frames"] == {"captured": 24, "processed": 24, "dropped": 0, "errors": 0}
        assert set(m["stages_ms"]) == STAGES
        for stats in (*m["stages_ms"].values(), m["latency_ms"]):
            assert stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
        assert m["stages_ms"]["invoke"]["p50"] > 0 and m["fps"] > 15  # every frame, as fast as possible
        # frame-to-result covers the stages after capture
        assert m["latency_ms"]["p50"] >= m["stages_ms"]["invoke"]["p50"] + m["stages_ms"]["preprocess"]["p50"]
        assert m["source_fps"] == pytest.approx(15.0)
    assert bad["error"] and str(broken_model) in bad["error"]
    assert "│ tiny:float" in result.stdout and "│ tiny:int8" in result.stdout
    assert "nominal 15.0 fps" in result.stdout


def test_end_to_end_image_folder_max_frames(tflite_models, colour_files, tmp_path):
    folder = colour_files["red"].parent
    result, data = run_json(tmp_path, "-m", tflite_models["uint8"], "--source", folder, "--max-frames", 3)
    assert result.exit_code == 0, result.output
    m = data["models"][0]
    assert m["frames"]["processed"] == 3 and m["ended"] == "max frames"


@pytest.mark.parametrize("args, needle", [
    (("--max-frames", 0), "--max-frames must be at least 1 (got 0)"),
    (("--runs", 5, "--plot", "x.png"), "--runs, --plot measure model latency and do not apply with --source"),
])
def test_end_to_end_bad_options(tflite_models, colour_video, args, needle):
    result = invoke("-m", tflite_models["uint8"], "--source", colour_video, *args)
    err = result.stderr.strip()
    assert result.exit_code == 1 and err.startswith("error: ") and needle in err and len(err.splitlines()) == 1


def test_end_to_end_source_that_cannot_be_opened(tflite_models, tmp_path):
    result = invoke("-m", tflite_models["uint8"], "-m", tflite_models["float"], "--source", tmp_path / "none.mp4")
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert err.startswith("error: ") and "no such file or folder" in err and len(err.splitlines()) == 1
    not_video = tmp_path / "clip.mp4"
    not_video.write_bytes(b"this is not a video")
    result = invoke("-m", tflite_models["uint8"], "-m", tflite_models["float"], "--source", not_video)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert result.exit_code == 1 and len(errors) == 2 and all(str(not_video) in e for e in errors), result.stderr


# ---------------------------------------------------------------- refusing early, naming the culprit


@pytest.mark.parametrize("args, needle", [
    (("--json", "{missing}/b.json"), "--json {missing}/b.json: the folder {missing} does not exist"),
    (("--plot", "{missing}/b.png"), "--plot {missing}/b.png: the folder {missing} does not exist"),
    (("--plot", "{tmp}"), "--plot {tmp} is a folder"),
])
def test_unwritable_outputs_refused_before_measuring(tflite_models, tmp_path, monkeypatch, args, needle):
    from edge.bench import latency as bench
    monkeypatch.setattr(bench, "bench_model", lambda *a, **k: pytest.fail("measured before refusing"))
    fill = {"missing": tmp_path / "no-such-folder", "tmp": tmp_path}
    result = invoke("-m", tflite_models["float"], *[a.format(**fill) for a in args])
    err = result.stderr.strip()
    assert result.exit_code == 1 and err.startswith(f"error: {needle.format(**fill)}") and "\n" not in err, err


def test_unknown_device_refused_once_not_per_model(tflite_models):
    result = invoke("-m", tflite_models["float"], "-m", tflite_models["uint8"], "--device", "gpu")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        "error: Unknown device 'gpu'. Use auto, cpu, edgetpu, usb[:N] or pci[:N]."]


def test_input_too_small_names_the_option(tflite_models, tmp_path):
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    result = invoke("-m", tflite_models["float"], "--input", tiny, "--runs", 2)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert result.exit_code == 1 and errors == ["error: tiny_float.tflite: --input: image too small (1x1)"]


def test_bundle_int8_row_is_model_tflite_even_with_an_edgetpu_build(fresh_bundle, tmp_path, no_tpu):
    """With an Edge TPU build in the bundle, the int8 row still measures model.tflite on the CPU."""
    from edge.model.bundle import add_file

    add_file(fresh_bundle, "model_edgetpu.tflite", fresh_bundle / "model.tflite")
    tried = no_tpu
    result, data = run_json(tmp_path, "-m", fresh_bundle, "--all-variants", "--runs", 3)
    assert result.exit_code == 1  # the Edge TPU row fails alone
    flt, int8, tpu = data["models"]
    assert Path(int8["model"]).name == "model.tflite" and int8["device"] == "cpu" and int8["error"] is None
    assert "note:" not in result.stderr  # int8 never tried the Edge TPU, so nothing fell back
    assert len(tried) == 1 and "libedgetpu" in tpu["error"]


@pytest.mark.parametrize("extra", [[], ["--variants", "int8,float"], ["--eval", "EVAL"]])
def test_tables_fit_80_columns_and_wide_shows_every_column(bundle_dir, colour_files, extra):
    """An SSH terminal is 80 columns: no column may collapse to 'd… │ c…'."""
    from edge.cli import app

    eval_dir = colour_files["red"].parent / "eval80"
    for name, path in colour_files.items():
        (eval_dir / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, eval_dir / name / path.name)
    args = ["benchmark", "-m", str(bundle_dir), "--runs", "3", *[str(eval_dir) if a == "EVAL" else a for a in extra]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and all(len(line) <= 80 for line in table) and "…" not in result.stdout
    wide = CliRunner().invoke(app, [*args, "--wide"])
    assert wide.exit_code == 0 and all(h in wide.stdout for h in ("mean±std", "GMAC/s", "peak RSS MB", "p90"))
