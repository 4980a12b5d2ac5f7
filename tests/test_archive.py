"""The capture archive: its SQLite file and pictures, the capture desk, and /api/captures over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import LABELS, colour_image
from helpers import Feeder, free_port, wait_until, write_video

from edge.archive.desk import CaptureDesk
from edge.archive.review import ArchiveError, parse_review
from edge.archive.store import DB_FILE, Archive, ArchiveBusy, ArchiveFull
from edge.model.load import load_model
from edge.ops.postprocess import Prediction
from edge.outputs.server import LiveServer
from edge.results import OK, FrameResult

TOP = [{"index": 4, "label": "mel", "score": 0.81, "name": "Melanoma"}, {"index": 5, "label": "nv", "score": 0.12}]


def picture(seed: int = 0, hw: tuple[int, int] = (480, 640)) -> np.ndarray:
    return (np.random.default_rng(seed).random((*hw, 3)) * 255).astype(np.uint8)


def add(archive: Archive, seed: int = 0, **kw) -> "object":
    return archive.add(picture(seed), source="camera", status=kw.pop("status", OK), top_k=kw.pop("top_k", TOP),
                       quality={"sharpness": 40.0, "brightness": 120.0}, model={"name": "m", "sha256": "ab" * 32}, **kw)


# ---------------------------------------------------------------- the store


def test_captures_are_stored_listed_newest_first_and_reviewed(tmp_path):
    with Archive(tmp_path / "a") as archive:
        caps = [add(archive, seed=i) for i in range(3)]
        assert [c.id for c in caps] == [1, 2, 3]
        page, total = archive.list(limit=2)
        assert total == 3 and [c.id for c in page] == [3, 2]
        assert [c.id for c in archive.list(offset=2, limit=2)[0]] == [1]
        c = caps[0]
        assert (c.width, c.height, c.label, c.score, c.status) == (640, 480, "mel", 0.81, "ok")
        image = cv2.imread(str(archive.root / c.image))
        assert image.shape == (480, 640, 3) and (archive.root / c.image).stat().st_size == c.image_bytes
        assert cv2.imread(str(archive.root / c.thumb)).shape[1] == 240
        reviewed = archive.review(2, parse_review({"diagnosis": "nv", "lesion_id": " L-7 ", "note": "flat"}, LABELS_HAM))
        assert (reviewed.diagnosis, reviewed.lesion_id, reviewed.note) == ("nv", "L-7", "flat") and reviewed.reviewed
        assert [x.id for x in archive.list(reviewed=True)[0]] == [2]
        assert [x.id for x in archive.list(reviewed=False)[0]] == [3, 1]
    with Archive(tmp_path / "a", write=False) as again:  # what was committed is there after a reopen
        assert again.get(2).diagnosis == "nv" and again.check() == {"captures": 3, "missing_images": 0,
                                                                     "orphan_images": 0}
        with pytest.raises(ArchiveError, match="read-only"):
            add(again)


LABELS_HAM = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


@pytest.mark.parametrize("body,needle", [
    ({"diagnosis": "melanoma"}, "unknown diagnosis 'melanoma'"),
    ({"diagnosis": "mel", "severity": 3}, "unknown field(s) 'severity'"),
    ({"lesion_id": "L 7; DROP TABLE"}, "lesion_id must be"),
    ({"lesion_id": 7}, "lesion_id must be"),
    ({"note": "x" * 5000}, "at most 4000"),
    (["mel"], "a review is a JSON object"),
])
def test_a_bad_review_is_one_clear_line(body, needle):
    with pytest.raises(ArchiveError) as e:
        parse_review(body, LABELS_HAM)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_clears_to_not_reviewed_and_unknown_is_a_diagnosis(tmp_path):
    with Archive(tmp_path / "a") as archive:
        add(archive)
        assert archive.review(1, parse_review({"diagnosis": "unknown"}, LABELS_HAM)).reviewed is not None
        assert archive.review(1, parse_review({"diagnosis": None}, LABELS_HAM)).reviewed is None


def test_one_writer_at_a_time_readers_welcome(tmp_path):
    with Archive(tmp_path / "a") as first:
        add(first)
        with pytest.raises(ArchiveBusy, match=f"in use by another process \\(pid {os.getpid()}\\)"):
            Archive(tmp_path / "a")
        with Archive(tmp_path / "a", write=False) as reader:
            assert reader.list()[1] == 1
    with Archive(tmp_path / "a") as second:  # released on close
        assert second.list()[1] == 1


def test_a_damaged_database_is_refused_in_one_line_and_the_pictures_stay(tmp_path):
    with Archive(tmp_path / "a") as archive:
        cap = add(archive)
    (tmp_path / "a" / DB_FILE).write_bytes(b"this is not an SQLite file at all" * 100)
    with pytest.raises(ArchiveError) as e:
        Archive(tmp_path / "a")
    assert "is damaged" in str(e.value) and "Move archive.sqlite3 aside" in str(e.value)
    assert (tmp_path / "a" / cap.image).is_file()
    with pytest.raises(ArchiveError, match="no archive"):
        Archive(tmp_path / "nowhere", write=False)


def test_a_capture_cut_short_leaves_no_trace_and_is_cleaned_at_open(tmp_path):
    with Archive(tmp_path / "a") as archive:
        add(archive)
    (tmp_path / "a" / "images" / ".tmp-20260101T000000-deadbeef.jpg").write_bytes(b"\xff\xd8 half")
    with Archive(tmp_path / "a") as archive:
        assert not list((tmp_path / "a" / "images").glob(".tmp-*"))
        assert archive.check()["captures"] == 1


@pytest.fixture()
def small_disk(tmp_path):
    """A real 2 MB file system (tmpfs), so that the disk really fills up."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_refuses_the_capture_and_loses_nothing(small_disk):
    stored = []
    with Archive(small_disk / "a") as archive:
        with pytest.raises(ArchiveFull) as e:
            for i in range(100):  # ~360 KB per noisy 640x480 picture: the disk fills within a few
                stored.append(add(archive, seed=i).id)
        assert "is full: this capture was not stored" in str(e.value) and 1 <= len(stored) < 100
        assert not list((small_disk / "a" / "images").glob(".tmp-*"))  # no half-written picture left
    with Archive(small_disk / "a", write=False) as again:
        assert [c.id for c in again.all()] == stored
        assert again.check() == {"captures": len(stored), "missing_images": 0, "orphan_images": 0}
        for c in again.all():
            assert cv2.imread(str(again.root / c.image)) is not None


# ---------------------------------------------------------------- kill -9 while capturing

WRITER = """
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from edge.archive.store import Archive
a = Archive(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[3]))
while True:
    c = a.add((rng.random((600, 800, 3)) * 255).astype(np.uint8), source="camera", status="ok",
              top_k=[{"index": 0, "label": "mel", "score": 0.9}], quality={"sharpness": 10.0}, model={})
    print(c.id, c.uid, flush=True)
"""


def test_kill_9_during_captures_loses_no_finished_capture(tmp_path):
    root = tmp_path / "a"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    finished: dict[int, str] = {}
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(root), str(Path.cwd()), str(round_)],
                                stdout=subprocess.PIPE, text=True)
        target = len(finished) + 4 + round_
        while len(finished) < target:
            line = proc.stdout.readline()
            assert line, "the writer stopped"
            cap_id, uid = line.split()
            finished[int(cap_id)] = uid
        time.sleep(0.013 * round_)  # somewhere inside the next capture
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for line in proc.stdout.read().split("\n"):  # lines printed just before the kill
            if line.strip():
                cap_id, uid = line.split()
                finished[int(cap_id)] = uid
        with Archive(root) as archive:  # reopened for writing: leftovers of the cut capture removed
            kept = {c.id: c for c in archive.all()}
            for cap_id, uid in finished.items():  # every capture it reported is whole
                assert kept[cap_id].uid == uid
                data = (root / kept[cap_id].image).read_bytes()
                assert len(data) == kept[cap_id].image_bytes and data.endswith(b"\xff\xd9")
                assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (600, 800, 3)
            assert archive.check()["missing_images"] == 0  # no row without its picture, ever
            assert not list((root / "images").glob(".tmp-*"))
    with sqlite3.connect(root / DB_FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---------------------------------------------------------------- the desk and /api/captures


@pytest.fixture(scope="module")
def model(bundle_dir):
    return load_model(bundle_dir, device="cpu", threads=1)


@pytest.fixture()
def served(tmp_path, model):
    archive = Archive(tmp_path / "archive")
    desk = CaptureDesk(archive, model={"name": "tiny"}, classes=LABELS, names=model.names)
    live = LiveServer("127.0.0.1", 0, token="t0k", desk=desk, model_info={"name": "tiny", "archive": True}).start()
    yield live, desk
    live.close()
    desk.close()


def call(live: LiveServer, method: str, path: str, body: object = None, *, token: str | None = "t0k",
         ctype: str | None = "application/json", raw: bytes | None = None) -> tuple[int, dict, object]:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if ctype:
        headers["Content-Type"] = ctype
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    kind = resp.getheader("Content-Type") or ""
    return resp.status, dict(resp.getheaders()), json.loads(payload) if "json" in kind else payload


def result(index: int, sharpness: float, label: str = "red", score: float = 0.9) -> FrameResult:
    top = (Prediction(LABELS.index(label), label, score),)
    return FrameResult(time.time(), index, OK, top=top, raw_top=top, quality={"sharpness": sharpness,
                                                                                "brightness": 120.0})


def test_capture_before_the_first_frame_is_a_clear_409(served):
    live, _ = served
    code, _, body = call(live, "POST", "/api/captures", {})
    assert code == 409 and "no frame to capture" in body["error"] and body["hint"]


def test_capture_stores_the_sharpest_frame_of_the_last_second_at_full_resolution(served):
    live, desk = served
    frames = {i: colour_image("red", (720, 1280), seed=i) for i in range(6)}
    for i, sharp in enumerate([30.0, 80.0, 55.0, 20.0, 70.0, 10.0]):
        desk.publish(result(i, sharp), frames[i])
    code, headers, body = call(live, "POST", "/api/captures", {})
    assert code == 201 and headers["Location"] == f"/api/captures/{body['id']}"
    assert body["frame"] == 1 and (body["width"], body["height"]) == (1280, 720)  # frame 1 was the sharpest
    assert body["label"] == "red" and body["model"] == {"name": "tiny"} and body["capture_ms"] > 0
    code, _, jpeg = call(live, "GET", f"/api/captures/{body['id']}/image.jpg")
    stored = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    error = {i: np.abs(stored.astype(int) - f).mean() for i, f in frames.items()}
    assert code == 200 and min(error, key=error.get) == 1  # that frame itself (its noise), through JPEG
    time.sleep(1.1)  # the window has passed: nothing recent to capture
    assert call(live, "POST", "/api/captures", {})[0] == 409


def test_a_frame_kept_in_opencv_order_is_stored_as_the_same_rgb_image(tmp_path):
    """The pipeline hands the desk decoded (BGR) frames unconverted; only the captured one is
    converted, and the archive holds exactly what an RGB frame gives."""
    frame = colour_image("red", (240, 320), seed=3)
    stored = []
    for name, image, bgr in (("rgb", frame, False), ("bgr", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), True)):
        desk = CaptureDesk(Archive(tmp_path / name), model={"name": "tiny"}, classes=LABELS)
        assert desk.takes_bgr
        desk.publish(result(0, 50.0), image, bgr=bgr)
        cap = desk.capture()
        stored.append((tmp_path / name / cap.image).read_bytes())
        desk.close()
    assert stored[0] == stored[1]


def test_low_confidence_is_judged_on_the_captured_frame_alone(served):
    live, desk = served
    desk.publish(result(0, 50.0, score=0.3), colour_image("red"))
    code, _, body = call(live, "POST", "/api/captures", {})
    assert code == 201 and body["status"] == "uncertain" and body["reasons"] == ["low confidence"]
    assert body["label"] is None and body["top_k"][0]["label"] == "red"


def test_list_read_review_and_pictures(served, model):
    live, desk = served
    with Feeder(desk, model, "green", hz=30):
        wait_until(lambda: desk.best() is not None, timeout=5)
        ids = [call(live, "POST", "/api/captures", {})[2]["id"] for _ in range(3)]
    code, _, page = call(live, "GET", "/api/captures?limit=2")
    assert code == 200 and page["total"] == 3 and [c["id"] for c in page["captures"]] == ids[::-1][:2]
    assert call(live, "GET", "/api/captures?offset=2&limit=2")[2]["captures"][0]["id"] == ids[0]
    code, _, one = call(live, "GET", f"/api/captures/{ids[0]}")
    assert code == 200 and one["label"] == "green" and one["top_k"][0]["label"] == "green"
    code, headers, thumb = call(live, "GET", f"/api/captures/{ids[0]}/thumb.jpg")
    assert code == 200 and headers["Content-Type"] == "image/jpeg" and thumb[:2] == b"\xff\xd8"
    code, _, done = call(live, "PATCH", f"/api/captures/{ids[0]}", {"diagnosis": "blue", "lesion_id": "L-1",
                                                                      "note": "rechecked"})
    assert code == 200 and (done["diagnosis"], done["lesion_id"], done["note"]) == ("blue", "L-1", "rechecked")
    assert call(live, "GET", "/api/captures?reviewed=true")[2]["total"] == 1
    assert call(live, "GET", "/api/captures?reviewed=false")[2]["total"] == 2


def test_bad_requests_get_one_clear_answer_and_change_nothing(served):
    live, desk = served
    desk.publish(result(0, 50.0), colour_image("red"))
    cap = call(live, "POST", "/api/captures", {})[2]
    cases = [
        (("PATCH", f"/api/captures/{cap['id']}", {"diagnosis": "purple"}), 400, "unknown diagnosis 'purple'"),
        (("PATCH", "/api/captures/999", {"diagnosis": "red"}), 404, "no capture 999"),
        (("PATCH", f"/api/captures/{cap['id']}", {"diagnosis": "red", "x": 1}), 400, "unknown field"),
        (("GET", "/api/captures/999", None), 404, "no capture 999"),
        (("GET", "/api/captures?limit=0", None), 400, "limit 1 to 200"),
        (("GET", "/api/captures?offset=x", None), 400, "whole numbers"),
        (("GET", "/api/captures/abc", None), 404, "no such path"),
        (("DELETE", f"/api/captures/{cap['id']}", None), 405, "not allowed"),
    ]
    for (method, path, body), code, needle in cases:
        got, _, answer = call(live, method, path, body)
        assert got == code and needle in answer["error"], (method, path, answer)
    assert call(live, "PATCH", f"/api/captures/{cap['id']}", raw=b"{not json")[2]["error"].startswith(
        "the body is not valid JSON")
    assert call(live, "POST", "/api/captures", {}, ctype="text/plain")[0] == 415  # no cross-site form posts
    assert call(live, "POST", "/api/captures", raw=b"{}" + b" " * 70000)[0] == 413
    assert call(live, "POST", "/api/captures", {}, token=None)[0] == 401
    assert call(live, "PATCH", f"/api/captures/{cap['id']}", {"diagnosis": "red"}, token="wrong")[0] == 401
    code, _, same = call(live, "GET", f"/api/captures/{cap['id']}")
    assert same["diagnosis"] is None and call(live, "GET", "/api/captures")[2]["total"] == 1


def test_a_deleted_picture_is_a_404_and_the_rest_still_works(served):
    live, desk = served
    desk.publish(result(0, 50.0), colour_image("red"))
    cap = call(live, "POST", "/api/captures", {})[2]
    (desk.archive.root / "images" / f"{cap['uid']}.jpg").unlink()
    code, _, body = call(live, "GET", f"/api/captures/{cap['id']}/image.jpg")
    assert code == 404 and "missing from the archive" in body["error"]
    assert call(live, "GET", f"/api/captures/{cap['id']}")[0] == 200
    assert call(live, "PATCH", f"/api/captures/{cap['id']}", {"diagnosis": "red"})[0] == 200


def test_without_an_archive_the_api_says_how_to_get_one(tmp_path):
    live = LiveServer("127.0.0.1", 0).start()
    try:
        code, _, body = call(live, "POST", "/api/captures", {}, token=None)
        assert code == 404 and body["hint"] == "Start it with --archive DIR."
        assert call(live, "GET", "/api/model", token=None)[2]["archive"] is False
    finally:
        live.close()


# ---------------------------------------------------------------- through edge run


def edge(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture()
def video(tmp_path) -> Path:
    frames = [colour_image(n, (240, 320), seed=i) for i in range(20) for n in ("red", "green")]
    return write_video(tmp_path / "v.avi", frames, fps=10.0)


def test_two_daemons_on_one_archive(bundle_dir, video, tmp_path):
    port = free_port()
    first = edge("run", "--model", str(bundle_dir), "--source", str(video), "--http", f"127.0.0.1:{port}",
                 "--archive", str(tmp_path / "a"), "--duration", "30", "--quiet")
    try:
        wait_until(lambda: (tmp_path / "a" / DB_FILE).is_file() or first.poll() is not None, timeout=20)
        second = subprocess.run([sys.executable, "-m", "edge", "run", "--model", str(bundle_dir), "--source",
                                 str(video), "--archive", str(tmp_path / "a"), "--quiet"],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"is in use by another process (pid {first.pid})" in second.stderr.strip().splitlines()[-1]
        assert first.poll() is None  # the first one keeps running
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(10) == 0, first.communicate()[1]


def test_an_archive_on_the_network_needs_a_token(bundle_dir, video, tmp_path):
    done = subprocess.run([sys.executable, "-m", "edge", "run", "--model", str(bundle_dir), "--source", str(video),
                           "--http", "0.0.0.0:0", "--archive", str(tmp_path / "a")],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "SKIN_EDGE_TOKEN": ""})
    assert done.returncode == 1 and "needs an access token" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "a").exists()


def test_the_c_key_captures(bundle_dir, video, tmp_path):
    import pty

    leader, follower = pty.openpty()
    proc = edge("run", "--model", str(bundle_dir), "--source", str(video), "--archive", str(tmp_path / "a"),
                "--duration", "20", stdin=follower)
    os.close(follower)
    try:
        wait_until(lambda: proc.poll() is not None or (tmp_path / "a" / DB_FILE).is_file(), timeout=20)
        time.sleep(1.5)  # frames flowing
        os.write(leader, b"c")
        with Archive(tmp_path / "a", write=False) as archive:
            wait_until(lambda: archive.list()[1] == 1, timeout=10)
            assert archive.list()[0][0].source == "camera"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        os.close(leader)
    assert proc.returncode == 0, err
    assert "press c to capture" in err and "capture 1 stored:" in err
