"""Attack skin-edge as a hostile user would, and count what goes wrong.

    .venv/bin/python fuzz/adversarial.py [--quick] [--jobs 2] [--json OUT] [--only models,images,...]

Every case runs the real commands (``edge``, ``train``) in child processes, as a user or a script
would, and is judged from the outside:

- **traceback**: a Python traceback reached the user (stdout, stderr or the daemon's log);
- **native crash**: the process died of a signal (SIGSEGV, SIGABRT, ...);
- **hang**: no exit within the case's time limit;
- **wrong exit**: exit 0 for a failure, or a failure that is not one ``error:`` line with exit 1
  (Typer's own usage errors, exit 2, count as clean);
- **data loss**: a result that was reported but is missing or damaged afterwards (a JSON line cut
  short, an image without its result, a finished training run thrown away).

Groups (default sizes, as the adversarial review that filed the issue used): ``models`` (the
known structural lies of fuzz/mutants.py through all five commands, then mutated models to 500,
two commands each), ``images`` (400 image files), ``http`` (~150 requests against a
running daemon), ``daemon`` (its faults), ``cli`` (bad config and command-line values), ``train``
(bad training input). ``--quick`` runs a tenth of the mutants and images. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
OUTCOMES = ("ok", "traceback", "native crash", "hang", "wrong exit", "data loss")


@dataclass
class Case:
    group: str
    name: str
    argv: list[str]
    expect: str = "either"  # "ok" (exit 0), "error" (a clean failure), "either"
    timeout: float = 60.0
    stdin: bytes | None = None
    check: object = None  # callable(rc, out, err) -> str | None: a data-loss finding
    env: dict = field(default_factory=dict)
    count: int = 1  # inputs the case tries (a batch of images is one process, many inputs)
    refused: int | None = None  # of them refused cleanly, when the case can tell (set by its check)


def judge(case: Case, rc: int | None, out: str, err: str) -> str:
    if rc is None:
        return "hang"
    if rc < 0:
        return "native crash"
    if "Traceback (most recent call last)" in out + err:
        return "traceback"
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    clean_fail = (rc == 1 and len(errors) >= 1) or rc == 2 or rc == 130
    if case.expect == "ok" and rc != 0:
        return "wrong exit"
    if case.expect == "error" and not clean_fail:
        return "wrong exit"
    if case.expect == "either" and rc != 0 and not clean_fail:
        return "wrong exit"
    return "ok"


def run_case(case: Case, work: Path) -> tuple[Case, str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "200", **case.env}
    try:
        done = subprocess.run(case.argv, capture_output=True, timeout=case.timeout, env=env, cwd=work,
                              input=case.stdin)
        rc, out, err = done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        rc, out, err = None, (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace")
    outcome = judge(case, rc, out, err)
    if outcome == "ok" and callable(case.check):
        loss = case.check(rc, out, err)
        if loss:
            outcome, err = "data loss", f"{loss}\n{err}"
    detail = f"rc={rc}" if outcome == "ok" else f"rc={rc} " + (err.strip().splitlines() or [""])[-1][:200]
    return case, outcome, detail


# ---------------------------------------------------------------- fixtures the cases use


def make_bundle(work: Path) -> Path:
    """A small real bundle (3 classes, logits + maps + features, golden outputs) from the fuzz seeds."""
    from edge.model.bundle import write_bundle
    from edge.model.load import load_model
    from train.export.golden import write_golden

    model = HERE / "corpus" / "tflite" / "trust_uint8.tflite"
    staging = work / "staging"
    staging.mkdir()
    m = load_model(model, device="cpu", threads=1)
    inputs = np.random.default_rng(0).integers(0, 256, (4, m.spec.height, m.spec.width, 3), dtype=np.uint8)
    outputs = np.stack([m.invoke(x[None])[0] for x in inputs])
    golden = write_golden(staging, inputs, outputs, [f"g{i}" for i in range(4)], m)
    return write_bundle(work / "bundle", model=model, labels=("mel", "nv", "bkl"), name="adversarial",
                        activation="logits", extra={"golden": golden},
                        extra_files={n: staging / n for n in ("golden_inputs.npy", "golden_outputs.npy")})


def write_images(folder: Path, n: int = 3) -> list[Path]:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"photo{i}.jpg"
        rgb = np.random.default_rng(i).integers(60, 200, (120, 160, 3), dtype=np.uint8)
        cv2.imwrite(str(p), rgb)
        paths.append(p)
    return paths


def write_video(path: Path, frames: int, fps: float = 15.0) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    rng = np.random.default_rng(1)
    base = rng.integers(60, 200, (120, 160, 3), dtype=np.uint8)
    for i in range(frames):
        writer.write(np.roll(base, i, axis=1))
    writer.release()
    return path


def jsonl_intact(path: Path):
    def check(rc, out, err) -> str | None:
        if not path.exists():
            return None if rc else f"{path.name} missing"
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            return f"{path.name} ends in a cut line"
        for line in data.splitlines():
            try:
                json.loads(line)
            except ValueError:
                return f"{path.name} holds a damaged line"
        return None
    return check


# ---------------------------------------------------------------- the groups


def model_cases(work: Path, bundle: Path, image: Path, count: int, rng: random.Random) -> list[Case]:
    sys.path.insert(0, str(HERE))
    from run import mutate

    from edge.model.bundle import file_entry

    original = (bundle / "model.tflite").read_bytes()
    edge = str(BIN / "edge")
    structural_commands = 5  # each known lie goes through every command
    commands = [
        lambda f, b: [edge, "info", str(f)],
        lambda f, b: [edge, "classify", str(image), "--model", str(b)],
        lambda f, b: [edge, "verify", "--model", str(b)],
        lambda f, b: [edge, "benchmark", "--runs", "3", "--warmup", "1", "--model", str(f)],
        lambda f, b: [edge, "run", "--source", str(image), "--model", str(b), "--quiet"],
    ]
    from mutants import MUTANTS, mutant

    structural = []  # the known lies first (constant data on the input, indices past the end, ...)
    for j, (change, _) in enumerate(MUTANTS.values()):
        try:
            structural.append(mutant(bundle / "model.tflite", work / f"structural-{j}.tflite", change).read_bytes())
        except Exception:  # noqa: BLE001 - a change that does not apply to this model
            continue
    cases = []
    for i in range(count):
        data = structural[i] if i < len(structural) else mutate(original, rng, [original], 1 << 20)
        folder = work / "models" / f"m{i:04d}"
        shutil.copytree(bundle, folder)
        (folder / "model.tflite").write_bytes(data)
        meta = json.loads((folder / "model.json").read_text())
        meta["files"]["model.tflite"] = file_entry(folder / "model.tflite")  # the checksum matches the mutant
        (folder / "model.json").write_text(json.dumps(meta))
        which = range(structural_commands) if i < len(structural) else (2 * i, 2 * i + 1)
        for k in which:
            argv = commands[k % len(commands)](folder / "model.tflite", folder)
            cases.append(Case("models", f"mutant {i} {argv[1]}", argv, timeout=90))
    return cases


def image_cases(work: Path, bundle: Path, count: int, rng: random.Random) -> list[Case]:
    sys.path.insert(0, str(HERE))
    from run import mutate, seeds

    folder = work / "images"
    folder.mkdir()
    pool = seeds("image")
    suffix = {b"\xff\xd8": ".jpg", b"\x89P": ".png", b"BM": ".bmp", b"II": ".tif", b"RI": ".webp"}
    paths = []
    for i in range(count - 8):
        seed = rng.choice(pool)
        p = folder / f"img{i:04d}{suffix.get(seed[:2], '.jpg')}"
        p.write_bytes(mutate(seed, rng, pool, 1 << 20))
        paths.append(p)
    special = folder / "special"
    special.mkdir()
    (special / "empty.jpg").write_bytes(b"")
    with open(special / "sparse40g.jpg", "wb") as f:  # a sparse 40 GB file: refused by its size, unread
        f.truncate(40 << 30)
    os.mkfifo(special / "fifo.jpg")
    os.symlink("/dev/zero", special / "zero.png")
    (special / "folder.jpg").mkdir()
    (special / "text.jpg").write_text("not an image")
    (special / "gif.gif.jpg").write_bytes(b"GIF89a" + bytes(64))
    bomb = special / "bomb.png"
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))
    paths += sorted(special.iterdir())
    edge = str(BIN / "edge")
    cases = []
    for start in range(0, len(paths), 25):
        batch = paths[start:start + 25]
        case = Case("images", f"images {start}..{start + len(batch) - 1}",
                    [edge, "classify", "--json", "--model", str(bundle), *map(str, batch)],
                    timeout=120, count=len(batch))
        case.check = _every_image_answered(batch, case)
        cases.append(case)
    return cases


def _every_image_answered(batch: list[Path], case: Case):
    def check(rc, out, err) -> str | None:
        try:
            results = json.loads(out)["results"]
        except (ValueError, KeyError):
            return "no JSON results"
        case.refused = sum(r.get("status") == "error" for r in results)
        answered = {r.get("image") or r.get("path") for r in results}
        missing = [p.name for p in batch if str(p) not in answered]
        return f"no result for {missing[0]}" if missing else None
    return check


def cli_cases(work: Path, bundle: Path, image: Path) -> list[Case]:
    edge = str(BIN / "edge")
    video = write_video(work / "short.avi", 20)
    run = [edge, "run", "--model", str(bundle), "--source", str(video), "--quiet", "--no-realtime"]
    bad_numbers = ["-1", "0", "1e309", "inf", "-inf", "nan", "NaN", "99999999999999999999999", "2**70", "x", "",
                   "1e-400", "0x10", "٣"]
    cases = []
    for option in ("--threads", "--top-k", "--threshold", "--smoothing", "--max-frames", "--duration"):
        for value in bad_numbers[:9]:
            cases.append(Case("cli", f"run {option} {value!r}", [*run, option, value], expect="either"))
    for option, values in (("--runs", ["0", "-5", "10000000000000", "nan"]), ("--seconds", ["inf", "0", "-1", "nan"]),
                           ("--warmup", ["-1", "100000000000"]), ("--threads", ["1000000", "0"])):
        for value in values:
            cases.append(Case("cli", f"benchmark {option} {value}", [edge, "benchmark", "--model", str(bundle),
                                                                    option, value], expect="error"))
    for value in ("1000000", "0", "-3"):
        cases.append(Case("cli", f"classify --threads {value}",
                          [edge, "classify", str(image), "--model", str(bundle), "--threads", value], expect="error"))
    for spec in ("127.0.0.1:99999", "127.0.0.1:-1", "nohost", ":", "[::1:80", "999.1.1.1:80"):
        cases.append(Case("cli", f"--http {spec}", [*run, "--http", spec], expect="error"))
    configs = {
        "nested": "a = " + "[" * 5000 + "]" * 5000, "not toml": "= = =", "binary": "\x00\x01\x02",
        "huge string": "model = \"" + "x" * 200000 + "\"", "unknown key": "modle = \"x\"",
        "threads str": "threads = \"four\"", "threads huge": "threads = 100000000", "top_k 0": "top_k = 0",
        "threshold 2": "threshold = 2.0", "nan": "threshold = nan", "inf duration": "duration = -inf",
        "camera_size": "camera_size = [100000, 1]", "quality table": "quality = 3",
        "quality key": "[quality]\nmin_sharp = 1", "reconnect": "[reconnect]\ndelay = 0",
        "mqtt qos": "mqtt_qos = 7", "trusted_keys": "trusted_keys = 5", "trusted_keys entry": "trusted_keys = [\"\"]",
        "http": "http = \"x:y\"", "variant": "variant = \"fastest2\"", "picamera2": "[picamera2]\nAfMode = \"sideways\"",
        "utf16": "\ufeffmodel = 1".encode("utf-16").decode("latin-1"), "deep table": "[a.b.c.d.e.f.g]\nx = 1",
        "token_file fifo": "token_file = \"FIFO\"", "model dev": "model = \"/dev/zero\"",
    }
    fifo = work / "token.fifo"
    os.mkfifo(fifo)
    for name, text in configs.items():
        path = work / f"config-{len(cases)}.toml"
        path.write_bytes(text.replace("FIFO", str(fifo)).encode("utf-8", "surrogateescape"))
        cases.append(Case("cli", f"config {name}", [edge, "run", "--config", str(path), "--source", str(video),
                                                   "--quiet"], expect="error", timeout=30))
    for special in ("/dev/zero", str(fifo), "/etc", "/nonexistent.toml"):
        cases.append(Case("cli", f"--config {special}", [*run, "--config", special], expect="error", timeout=30))
    for special in ("/dev/zero", str(fifo), "/etc"):
        cases.append(Case("cli", f"--labels {special}", [*run, "--labels", special], expect="error", timeout=30))
        cases.append(Case("cli", f"info {special}", [edge, "info", special], expect="error", timeout=30))
        cases.append(Case("cli", f"--model {special}", [edge, "classify", str(image), "--model", special],
                          expect="error", timeout=30))
        cases.append(Case("cli", f"--token-file {special}", [*run, "--http", "127.0.0.1:0", "--token-file", special],
                          expect="error", timeout=30))
    return cases


def daemon_cases(work: Path, bundle: Path, image: Path) -> list[Case]:
    edge = str(BIN / "edge")
    video = write_video(work / "daemon.avi", 90)
    data = (work / "daemon.avi").read_bytes()
    (work / "cut.avi").write_bytes(data[: len(data) // 2])
    bad_folder = work / "all-bad"
    bad_folder.mkdir()
    for i in range(5):
        (bad_folder / f"x{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    mixed = work / "mixed"
    shutil.copytree(bad_folder, mixed)
    for p in write_images(work / "good", 3):
        shutil.copy(p, mixed / p.name)
    os.mkfifo(work / "results.fifo")
    os.mkfifo(work / "source.fifo")
    (work / "results-dir").mkdir()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port_in_use = busy.getsockname()[1]
    _KEEP.append(busy)
    base = [edge, "run", "--model", str(bundle), "--quiet"]
    ok_jsonl = work / "ok.jsonl"
    cases = [
        Case("daemon", "a good video", [*base, "--source", str(video), "--no-realtime", "--jsonl", str(ok_jsonl)],
             expect="ok", check=jsonl_intact(ok_jsonl)),
        Case("daemon", "a truncated video", [*base, "--source", str(work / "cut.avi"), "--no-realtime",
                                             "--jsonl", str(work / "cut.jsonl")], expect="error",
             check=jsonl_intact(work / "cut.jsonl")),
        Case("daemon", "every frame bad", [*base, "--source", str(bad_folder)], expect="error"),
        Case("daemon", "some images bad", [*base, "--source", str(mixed), "--jsonl", str(work / "mixed.jsonl")],
             expect="error", check=jsonl_intact(work / "mixed.jsonl")),
        Case("daemon", "no such source", [*base, "--source", str(work / "nothing.mp4")], expect="error"),
        Case("daemon", "source is /dev/zero", [*base, "--source", "/dev/zero"], expect="error", timeout=30),
        Case("daemon", "source is a FIFO", [*base, "--source", str(work / "source.fifo")], expect="error", timeout=30),
        Case("daemon", "empty folder", [*base, "--source", str(work / "results-dir")], expect="error"),
        Case("daemon", "results on a full disk", [*base, "--source", str(video), "--no-realtime", "--jsonl",
                                                  "/dev/full"], expect="error"),
        Case("daemon", "results into a FIFO", [*base, "--source", str(video), "--jsonl", str(work / "results.fifo")],
             expect="error", timeout=30),
        Case("daemon", "results into a folder", [*base, "--source", str(video), "--jsonl", str(work / "results-dir")],
             expect="error"),
        Case("daemon", "results in a missing folder", [*base, "--source", str(video), "--jsonl",
                                                       str(work / "no" / "such" / "r.jsonl")], expect="either"),
        Case("daemon", "port in use", [*base, "--source", str(video), "--http", f"127.0.0.1:{port_in_use}"],
             expect="error"),
        Case("daemon", "broker down", [*base, "--source", str(video), "--no-realtime", "--mqtt",
                                       "mqtt://127.0.0.1:9"], expect="ok", timeout=90),
        Case("daemon", "archive on a file", [*base, "--source", str(video), "--archive", str(ok_jsonl)],
             expect="error"),
        Case("daemon", "archive on the network without a token", [*base, "--source", str(video), "--archive",
                                                                  str(work / "arch"), "--http", "0.0.0.0:0"],
             expect="error"),
        Case("daemon", "no model", [edge, "run", "--source", str(video)], expect="error"),
        Case("daemon", "model missing", [edge, "run", "--model", str(work / "nothing"), "--source", str(video)],
             expect="error"),
        Case("daemon", "labels missing", [*base, "--source", str(video), "--labels", str(work / "nothing.txt")],
             expect="error"),
        Case("daemon", "two sources", [*base, "--source", str(video), "--camera", "0"], expect="error"),
        Case("daemon", "camera that is not there", [*base, "--camera", "/dev/video99"], expect="error", timeout=60),
        Case("daemon", "stream that is not there", [*base, "--source", "rtsp://127.0.0.1:9/x"], expect="error",
             timeout=90),
    ]
    for sig in ("TERM", "INT", "HUP"):
        path = work / f"signal-{sig}.jsonl"
        script = (f"import signal, subprocess, sys, time\np = subprocess.Popen({[*base, '--source', str(video), '--jsonl', str(path)]!r})\n"
                  f"time.sleep(4)\np.send_signal(signal.SIG{sig})\nsys.exit(p.wait(timeout=30))")
        cases.append(Case("daemon", f"SIG{sig} mid-run", [sys.executable, "-c", script], expect="ok", timeout=60,
                          check=jsonl_intact(path)))
    script = (f"import signal, subprocess, sys, time\np = subprocess.Popen({[*base, '--source', str(video)]!r})\n"
              "time.sleep(4)\np.send_signal(signal.SIGTERM)\ntime.sleep(0.05)\np.send_signal(signal.SIGTERM)\n"
              "rc = p.wait(timeout=30)\nsys.exit(0 if rc in (0, 1, 130, 143) else 3)")
    cases.append(Case("daemon", "SIGTERM twice", [sys.executable, "-c", script], expect="ok", timeout=60))
    for i, (what, extra) in enumerate((("threads 0", ["--threads", "0"]), ("token file missing",
                                       ["--http", "127.0.0.1:0", "--token-file", str(work / "none")]))):
        cases.append(Case("daemon", what, [*base, "--source", str(video), *extra], expect="error"))
    return cases


_KEEP: list = []


def train_cases(work: Path) -> list[Case]:
    trainer = str(BIN / "train")
    data = work / "data"
    subprocess.run([trainer, "sample-data", str(data), "--lesions", "21"], check=True, capture_output=True)
    empty = work / "empty-data"
    empty.mkdir()
    broken = work / "broken-data"
    shutil.copytree(data, broken)
    (broken / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n\x00\x00,\n")
    a_file = work / "a-file"
    a_file.write_text("x")
    fit = [trainer, "fit", "--data", str(data), "--out"]
    flags = [("--seed", "-1"), ("--seed", str(2**70)), ("--alpha", "inf"), ("--alpha", "nan"), ("--alpha", "0"),
             ("--alpha", "-1"), ("--image-size", "0"), ("--image-size", "1000000"), ("--batch-size", "0"),
             ("--batch-size", "1000000"), ("--epochs", "0"), ("--epochs", "-5"), ("--lr", "0"), ("--lr", "inf"),
             ("--lr", "nan"), ("--val-fraction", "1.5"), ("--test-fraction", "-0.1"), ("--patience", "0"),
             ("--fine-tune-layers", "0"), ("--fine-tune-epochs", "-1"), ("--weights", "/nonexistent.h5"),
             ("--weights", "/dev/zero"), ("--seed", "x"), ("--epochs", "1e3")]
    cases = [Case("train", f"fit {k} {v}", [*fit, str(work / f"run{i}"), k, v], expect="error", timeout=120)
             for i, (k, v) in enumerate(flags)]
    for name, folder in (("empty data", empty), ("broken metadata", broken), ("data is a file", a_file),
                         ("missing data", work / "none"), ("/dev/zero", Path("/dev/zero"))):
        cases.append(Case("train", f"fit on {name}", [trainer, "fit", "--data", str(folder), "--out",
                                                       str(work / f"r-{len(cases)}")], expect="error", timeout=180))
    cases.append(Case("train", "fit --out is the data", [*fit, str(data)], expect="error"))
    for name, run in (("missing run", work / "none"), ("a file", a_file), ("the data folder", data)):
        for command in ("quantize", "evaluate"):
            extra = ["--out", str(work / f"b-{len(cases)}")] if command == "quantize" else []
            cases.append(Case("train", f"{command} {name}", [trainer, command, str(run), *extra], expect="error",
                              timeout=180))
    for value in ("-1", str(2**70), "0"):
        cases.append(Case("train", f"quantize --calibration-size {value}", [trainer, "quantize", str(work / "none"),
                                                                           "--out", str(work / "q"),
                                                                           "--calibration-size", value],
                          expect="error"))
    for value in ("-1", str(2**70), "20", "10000000"):
        cases.append(Case("train", f"sample-data --lesions {value}", [trainer, "sample-data", str(work / "s"),
                                                                     "--lesions", value], expect="error"))
    cases.append(Case("train", "sample-data --seed -1", [trainer, "sample-data", str(work / "s2"), "--seed", "-1"],
                      expect="error"))
    cases.append(Case("train", "keygen into a missing folder", [trainer, "keygen", str(work / "no" / "k")],
                      expect="either"))
    cases.append(Case("train", "keygen onto a file's path", [trainer, "keygen", str(a_file / "k")], expect="error"))
    cases.append(Case("train", "sign without a key", [trainer, "sign", str(work / "none"), "--key",
                                                      str(work / "none.key")], expect="error"))
    cases.append(Case("train", "sign with a public key as the key", [trainer, "sign", str(data), "--key",
                                                                     str(a_file)], expect="error"))
    return cases


def http_cases(work: Path, bundle: Path) -> tuple[list, object]:
    """Raw requests against one running daemon; judged by their answers and the daemon's log."""
    token = "adversarial-token"
    long = "a" * 100_000
    raw = []
    for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/review/../../../etc/passwd",
                 "/static/../../edge/cli.py", "/live.js/../../../etc/shadow", "/\x00", "/%00", "/index.html%00.js",
                 "/api/captures/../../../etc/passwd", "/api/captures/99999999999999999999", "/api/captures/-1",
                 "/api/captures/1/../../model", "/metrics/../healthz", "/" + long):
        raw.append((f"traversal {path[:30]!r}", f"GET {path}?token={token} HTTP/1.1\r\nHost: x\r\n\r\n"))
    for method in ("PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "GETS", "get", "POST", "PATCH"):
        for path in ("/", "/api/latest", "/api/captures", "/api/captures/1", "/metrics"):
            raw.append((f"{method} {path}", f"{method} {path}?token={token} HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
    for header in (f"X: {long}", "\r\n".join(f"X-{i}: y" for i in range(2000)), "Content-Length: -1",
                   "Content-Length: 99999999999", "Content-Length: abc", "Transfer-Encoding: chunked",
                   "Authorization: Bearer " + long, "Authorization: Basic " + token, "Host: " + long):
        raw.append((f"header {header[:30]!r}", f"POST /api/captures?token={token} HTTP/1.1\r\n{header}\r\n"
                    "Content-Type: application/json\r\n\r\n{}"))
    for body in ("not json", "[" * 100_000, "{\"diagnosis\": \"" + long + "\"}", "{\"diagnosis\": 5}",
                 "{\"diagnosis\": \"mel\", \"lesion_id\": \"../../x\"}", "{\"note\": \"\\ud800\"}", "\xff\xfe"):
        data = body.encode("utf-8", "surrogatepass")
        raw.append((f"review body {body[:20]!r}", f"PATCH /api/captures/1?token={token} HTTP/1.1\r\nContent-Type: "
                    f"application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data))
    for tok in ("", "wrong", token + "x", token[:-1], "%00", long, token.upper()):
        raw.append((f"token {tok[:20]!r}", f"GET /api/latest?token={tok} HTTP/1.1\r\n\r\n"))
    for junk in (b"\x00" * 100, b"\r\n\r\n\r\n", b"GET\r\n\r\n", b"GET /\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                 "GET /\u2603 HTTP/1.1\r\n\r\n".encode(), b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"):
        raw.append((f"junk {junk[:16]!r}", junk))
    for path in ("/", "/review", "/api/model", "/api/stats", "/api/captures?limit=100000",
                 "/api/captures?offset=-1", "/api/captures?limit=abc", "/api/captures?reviewed=maybe",
                 "/snapshot.jpg?overlay=1", "/snapshot.jpg?overlay=" + long[:5000], "/healthz", "/metrics"):
        raw.append((f"GET {path[:30]}", f"GET {path}{'&' if '?' in path else '?'}token={token} HTTP/1.1\r\n\r\n"))
    return raw, token


def run_http(work: Path, bundle: Path, quick: bool) -> list[tuple[str, str, str]]:
    edge = str(BIN / "edge")
    video = write_video(work / "http.avi", 3000, fps=30)
    port = _free_port()
    log = open(work / "http-daemon.log", "wb")
    proc = subprocess.Popen([edge, "run", "--model", str(bundle), "--source", str(video), "--http",
                             f"127.0.0.1:{port}", "--token", "adversarial-token", "--archive", str(work / "arch"),
                             "--quiet"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    results = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _request(port, b"GET /healthz HTTP/1.1\r\n\r\n")[0] != 200:
            time.sleep(0.3)
        raw, token = http_cases(work, bundle)
        _request(port, f"POST /api/captures?token={token} HTTP/1.1\r\nContent-Type: application/json\r\n"
                 "Content-Length: 2\r\n\r\n{}".encode())
        for name, request in raw:
            data = request if isinstance(request, bytes) else request.encode("utf-8", "surrogateescape")
            code, _ = _request(port, data)
            alive = proc.poll() is None
            outcome = "native crash" if not alive and proc.returncode < 0 else "hang" if code == -1 else \
                "wrong exit" if not alive else "ok"
            results.append(("http", name, outcome if outcome != "ok" else ("ok" if code != 0 else "ok")))
            if not alive:
                break
        for i in range(20 if quick else 50):  # clients that leave mid-response: the MJPEG stream, a snapshot
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"GET /stream.mjpg?token={token} HTTP/1.1\r\n\r\n".encode())
            s.recv(100)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # a reset, not a goodbye
            results.append(("http", f"dropped client {i}", "ok" if proc.poll() is None else "native crash"))
        slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
        for s in slow:
            s.sendall(b"GET /api/latest HTTP/1.1\r\nX-Slow: ")  # slowloris: headers never finish
        ok = _request(port, b"GET /healthz HTTP/1.1\r\n\r\n")[0] == 200
        results.append(("http", "100 slowloris connections, then /healthz", "ok" if ok else "hang"))
        for s in slow:
            s.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                results.append(("http", "stops on SIGTERM", "hang"))
        log.close()
    text = (work / "http-daemon.log").read_text(errors="replace")
    if "Traceback" in text:
        results.append(("http", "the daemon's log", "traceback"))
    dropped_lines = sum("went away" in x or "dropped" in x or "connection" in x.lower() for x in text.splitlines())
    results.append(("http", f"log after all that: {len(text.splitlines())} lines ({dropped_lines} about clients)",
                    "ok" if len(text.splitlines()) < 60 else "wrong exit"))
    if proc.returncode not in (0, None):
        results.append(("http", f"daemon exit {proc.returncode}", "wrong exit"))
    return results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """(status code, answer): 0 when the server closed without an answer, -1 when it did not answer in time."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            answer = b""
            while len(answer) < 1 << 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except socket.timeout:
        return -1, b""
    except OSError:
        return 0, b""
    try:
        return int(answer.split(b" ", 2)[1]), answer
    except (IndexError, ValueError):
        return 0, answer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the mutated models and images")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="models,images,http,daemon,cli,train")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    groups = args.only.split(",")
    work = Path(tempfile.mkdtemp(prefix="edge-adversarial-"))
    env_seen = work / "seen-models.json"  # every mutant is a model this device has not seen
    os.environ["SKIN_EDGE_SEEN_MODELS"] = str(env_seen)
    os.environ.setdefault("SKIN_EDGE_TRUSTED_KEYS_DIR", "")
    os.environ["STATE_DIRECTORY"] = str(work / "state")
    (work / "state").mkdir()
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    bundle = make_bundle(work)
    image = write_images(work / "photos", 1)[0]
    cases: list[Case] = []
    if "models" in groups:
        cases += model_cases(work, bundle, image, 50 if args.quick else 500, rng)
    if "images" in groups:
        cases += image_cases(work, bundle, 40 if args.quick else 400, rng)
    if "cli" in groups:
        cases += cli_cases(work, bundle, image)
    if "daemon" in groups:
        cases += daemon_cases(work, bundle, image)
    if "train" in groups:
        cases += train_cases(work)
    results: list[tuple[str, str, str, str]] = []
    weights: dict[str, tuple[int, int | None]] = {}  # case name -> (inputs tried, of them refused)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for case, outcome, detail in pool.map(lambda c: run_case(c, work), cases):
            results.append((case.group, case.name, outcome, detail))
            weights[case.name] = (case.count, case.refused)
            if outcome != "ok":
                print(f"  {case.group}: {case.name}: {outcome.upper()} {detail}", flush=True)
    if "http" in groups:
        for group, name, outcome in run_http(work, bundle, args.quick):
            results.append((group, name, outcome, ""))
            if outcome != "ok":
                print(f"  {group}: {name}: {outcome.upper()}", flush=True)
    table, refused = {}, {}
    for group, name, outcome, detail in results:
        row = table.setdefault(group, {o: 0 for o in OUTCOMES})
        n, n_refused = weights.get(name, (1, None))
        row[outcome] += n
        if n_refused is None:
            n_refused = n if outcome == "ok" and detail not in ("", "rc=0") else 0
        refused[group] = refused.get(group, 0) + (n_refused if outcome == "ok" else 0)
    print(f"\n{'group':8} {'tried':>6} {'refused':>8} " + " ".join(f"{o:>12}" for o in OUTCOMES[1:]))
    for group, row in table.items():
        print(f"{group:8} {sum(row.values()):>6} {refused[group]:>8} " + " ".join(f"{row[o]:>12}" for o in OUTCOMES[1:]))
    total = {o: sum(r[o] for r in table.values()) for o in OUTCOMES}
    print(f"{'all':8} {sum(total.values()):>6} {sum(refused.values()):>8} "
          + " ".join(f"{total[o]:>12}" for o in OUTCOMES[1:]))
    print("refused: a clean one-line refusal (exit 1 or 2); the rest of the clean cases exited 0")
    print(f"({time.monotonic() - t0:.0f} s; work in {work})")
    if args.json:
        args.json.write_text(json.dumps({"table": table, "cases": [dict(zip(("group", "case", "outcome", "detail"), r))
                                                                   for r in results]}, indent=1))
    bad = sum(total[o] for o in OUTCOMES[1:])
    if not bad:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
