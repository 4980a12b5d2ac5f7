"""Calibrated probabilities, the OOD score and class activation maps: the numpy parts on data with a
known answer, the bundle parts on the session's real quantized bundle (tests/helpers.py)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import colour_image
from helpers import one_line_error
from typer.testing import CliRunner

from edge.cli import app
from edge.errors import BundleError
from edge.ops.calibration import ece, fit_temperature, softmax_rows
from edge.ops.ood import fit_ood, load_ood

runner = CliRunner()


def test_temperature_fit_recovers_overconfidence_and_lowers_ece():
    rng = np.random.default_rng(0)
    n, classes = 4000, 5
    true_logits = rng.normal(0, 2.0, (n, classes))
    y = np.array([rng.choice(classes, p=p) for p in softmax_rows(true_logits)])
    overconfident = true_logits * 3.0  # the network's logits: right ranking, three times too sure
    t = fit_temperature(overconfident[:2000], y[:2000])
    assert 2.6 < t < 3.4
    before = ece(softmax_rows(overconfident[2000:]), y[2000:])
    after = ece(softmax_rows(overconfident[2000:], t), y[2000:])
    assert after < before / 3 and after < 0.03


def test_ood_score_separates_a_shifted_cloud_and_threshold_passes_95_percent():
    rng = np.random.default_rng(1)
    dims, classes = 32, 3
    centres = rng.normal(0, 4, (classes, dims))
    y = rng.integers(0, classes, 3000)
    feats = centres[y] + rng.normal(0, 1, (3000, dims))
    model = fit_ood(feats[:2000], y[:2000], classes, components=8)
    model = model.with_threshold(model.scores(feats[2000:2500]))
    familiar = model.scores(feats[2500:])
    strange = model.scores(rng.normal(0, 1, (500, dims)) * 3 + 10)
    assert 0.9 < np.mean(familiar <= model.threshold) <= 1.0
    assert np.mean(strange > model.threshold) > 0.99
    assert 0.7 < np.median(familiar) < 1.5  # about 1 per dimension for familiar images


def test_bundle_carries_temperature_ood_and_maps(quantized):
    meta = json.loads((quantized["bundle"] / "model.json").read_text())
    assert meta["output"]["activation"] == "logits"
    assert 0.05 <= meta["calibration"]["temperature"] <= 20 and meta["calibration"]["bins"] == 15
    assert meta["calibration"]["ece"] <= meta["calibration"]["ece_uncalibrated"]
    assert meta["ood"]["auroc"] > 0.9 and meta["ood"]["non_lesion_images"] >= 50
    assert "ood.npz" in meta["files"] and meta["cam"]["shape"][-1] == len(meta["labels"])
    assert meta["metrics"]["ood_auroc"] == meta["ood"]["auroc"]
    shown = runner.invoke(app, ["info", str(quantized["bundle"]), "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["lacks"] == []


def test_classify_reports_ood_score_and_flags_an_unfamiliar_photo(quantized, colour_files, tmp_path):
    import skimage.data

    photo = tmp_path / "coffee.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR))
    r = runner.invoke(app, ["classify", str(colour_files["red"]), str(photo), "--model", str(quantized["bundle"]),
                            "--json", "--explain", str(tmp_path / "maps")])
    assert r.exit_code == 0, r.output
    red, coffee = json.loads(r.stdout)["results"]
    assert red["status"] == "ok" and red["label"] == "red" and red["ood_score"] is not None
    assert coffee["status"] == "uncertain" and "unfamiliar image" in coffee["reasons"] and coffee["label"] is None
    assert coffee["ood_score"] > red["ood_score"]
    for result in (red, coffee):
        png = cv2.imread(result["explanation"])
        assert png is not None and png.ndim == 3


def test_explain_overlay_peaks_where_the_colour_is(quantized, tmp_path):
    from edge.model.explain import heatmap
    from edge.model.load import load_model

    m = load_model(quantized["bundle"], device="cpu")
    image = np.full((240, 288, 3), 128, np.uint8)  # grey, with a red patch in the top-left quarter
    image[:100, :120] = colour_image("red", (100, 120))
    top = m.classify(image).top[0]
    heat = heatmap(m.cam(top.index), 288, 240)
    assert top.label == "red"
    assert heat[:100, :120].mean() > 2 * heat[140:, 168:].mean()


@pytest.mark.parametrize("temperature", [0, -1.5, 1e6, "hot"])
def test_bad_temperature_is_refused_at_load_in_one_line(bundle, colour_files, temperature):
    meta = json.loads((bundle / "model.json").read_text())
    meta["calibration"]["temperature"] = temperature
    (bundle / "model.json").write_text(json.dumps(meta))
    line = one_line_error(runner.invoke(app, ["classify", str(colour_files["red"]), "--model", str(bundle)]))
    assert "calibration temperature" in line


def test_an_old_bundle_without_trust_data_still_runs(bundle_dir, colour_files):
    r = runner.invoke(app, ["classify", str(colour_files["red"]), "--model", str(bundle_dir), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["ood_score"] is None
    from edge.model.bundle import open_bundle

    lacks = open_bundle(bundle_dir).lacks()
    assert len(lacks) == 3 and any("OOD" in x for x in lacks)
    shown = runner.invoke(app, ["info", str(bundle_dir)])
    assert shown.exit_code == 0 and "this bundle has no calibration temperature" in shown.stdout.replace("\n", " ")


def test_a_damaged_ood_file_is_one_line(bundle, colour_files):
    (bundle / "ood.npz").write_bytes(b"PK\x03\x04 not a zip")
    line = one_line_error(runner.invoke(app, ["classify", str(colour_files["red"]), "--model", str(bundle)]))
    assert "ood.npz" in line
    with pytest.raises(BundleError):
        load_ood(bundle / "ood.npz", 1.0)


# ---------------------------------------------------------------- the maps on the live and review pages


def _patched_frame(colour: str = "red") -> np.ndarray:
    """A grey 120x160 frame with a coloured patch left of centre, clear of the drawn text bands."""
    frame = np.full((120, 160, 3), 128, np.uint8)
    frame[35:85, 20:70] = colour_image(colour, (50, 50))
    return frame


def _heat_gain(plain: np.ndarray, mapped: np.ndarray, box: tuple[slice, slice]) -> float:
    """How strongly the overlay covers a region: the map is blended 4x as strongly where it is hottest
    as where it is coldest, so a hot region changes most."""
    return float(np.abs(mapped[box].astype(float) - plain[box].astype(float)).sum(axis=-1).mean())


def test_live_view_overlay_is_hot_on_the_patch_and_off_by_default(quantized):
    import urllib.request

    from edge.model.load import load_model
    from edge.outputs.server import LiveServer
    from edge.results import OK, FrameResult
    from edge.run.pipeline import PipelineOptions, run_frames
    from edge.sources.factory import make_source

    m = load_model(quantized["bundle"], device="cpu")
    frame = _patched_frame()
    folder = quantized["base"] / "live-frames"
    folder.mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "patch.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    with_maps = run_frames(m, make_source(str(folder)), options=PipelineOptions(realtime=False, explain=True))
    without = run_frames(m, make_source(str(folder)), options=PipelineOptions(realtime=False))
    r = with_maps.results[0]
    assert r.raw_top[0].label == "red" and r.cam is not None and r.cam.shape == m.spec.cam.shape[1:3]
    assert without.results[0].cam is None and "cam" not in json.loads(r.json_line)  # JSON does not grow

    live = LiveServer("127.0.0.1", 0, aspect=m.spec.width / m.spec.height).start()
    try:
        live.publish(FrameResult(timestamp=r.timestamp, frame_index=0, status=OK, top=r.top, raw_top=r.raw_top,
                                 cam=r.cam), frame)

        def get(path: str) -> np.ndarray:
            with urllib.request.urlopen(live.url + path, timeout=5) as resp:
                assert resp.headers["Content-Type"] == "image/jpeg"
                return cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_COLOR)

        plain, mapped, off = get("snapshot.jpg"), get("snapshot.jpg?overlay=1"), get("snapshot.jpg?overlay=0")
    finally:
        live.close()
    scale = plain.shape[1] / 160  # the view is drawn at least 480 px wide
    patch = (slice(round(40 * scale), round(80 * scale)), slice(round(25 * scale), round(65 * scale)))
    away = (slice(round(40 * scale), round(80 * scale)), slice(round(100 * scale), round(140 * scale)))
    assert np.array_equal(plain, off)
    assert _heat_gain(plain, mapped, patch) > 1.5 * _heat_gain(plain, mapped, away)
    # a decoded frame handed over in OpenCV's order (``bgr=True``) draws the same pictures, map or not
    shown = FrameResult(timestamp=r.timestamp, frame_index=0, status=OK, top=r.top, raw_top=r.raw_top, cam=r.cam)
    for overlay in (False, True):
        pictures = []
        for image, bgr in ((frame, False), (cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), True)):
            view = LiveServer("127.0.0.1", 0, aspect=m.spec.width / m.spec.height)
            view.publish(shown, image, bgr=bgr)
            pictures.append(view.jpeg(overlay)[1])
            view.close()
        assert pictures[0] == pictures[1], overlay


def test_capture_keeps_its_map_and_serves_it(quantized, tmp_path):
    import urllib.error
    import urllib.request

    from edge.archive.desk import CaptureDesk
    from edge.archive.store import Archive
    from edge.model.load import load_model
    from edge.outputs.server import LiveServer
    from edge.results import OK, FrameResult

    m = load_model(quantized["bundle"], device="cpu")
    aspect = m.spec.width / m.spec.height
    desk = CaptureDesk(Archive(tmp_path / "archive"), model={"name": "tiny"}, classes=m.labels, aspect=aspect)
    frame = _patched_frame()
    c = m.classify(frame)
    for cam in (m.cam(c.top[0].index), None):  # a capture with its map, then one from a model without maps
        desk.publish(FrameResult(timestamp=0.0, frame_index=1, status=OK, top=c.top, raw_top=c.top, cam=cam,
                                 quality={"sharpness": 50.0}), frame)
        desk.capture()
    live = LiveServer("127.0.0.1", 0, desk=desk, aspect=aspect).start()
    try:
        with urllib.request.urlopen(live.url + "api/captures", timeout=5) as resp:
            listed = {x["id"]: x["explained"] for x in json.loads(resp.read())["captures"]}
        with urllib.request.urlopen(live.url + "api/captures/1/explain.jpg", timeout=5) as resp:
            picture = cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_COLOR)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(live.url + "api/captures/2/explain.jpg", timeout=5)
        body = json.loads(missing.value.read())
    finally:
        live.close()
        desk.close()
    assert listed == {1: True, 2: False}
    assert missing.value.code == 404 and "has no activation map" in body["error"]
    # the part the model saw (its aspect), hot where the patch is
    from edge.ops.preprocess import center_crop

    h, w = picture.shape[:2]
    assert abs(w / h - aspect) < 0.02
    plain = cv2.resize(cv2.cvtColor(np.ascontiguousarray(center_crop(frame, aspect)), cv2.COLOR_RGB2BGR), (w, h))
    rows = slice(int(0.35 * h), int(0.65 * h))
    patch, away = (rows, slice(int(0.15 * w), int(0.4 * w))), (rows, slice(int(0.65 * w), int(0.9 * w)))
    assert _heat_gain(plain, picture, patch) > 1.5 * _heat_gain(plain, picture, away)


def test_classify_archive_keeps_the_map(quantized, colour_files, tmp_path):
    from edge.archive.store import Archive

    r = runner.invoke(app, ["classify", str(colour_files["red"]), "--model", str(quantized["bundle"]),
                            "--archive", str(tmp_path / "archive")])
    assert r.exit_code == 0, r.output
    with Archive(tmp_path / "archive", write=False) as archive:
        cap = archive.get(1)
        assert cap.extra["explained"] and cv2.imread(str(archive.root / cap.explanation)) is not None
