"""Captures through a running `edge run --archive`: request -> stored, and the archive's size per capture.

    .venv/bin/python benchmarks/bench_capture.py [--captures 40] [--sizes 640x480,1280x720] [--json FILE]

For each camera size, `edge run` plays a camera-like video (a textured scene panning, as
bench_run.py's) in real time with the MobileNetV2 0.35/128 int8 bundle, the live page and an
archive; this script POSTs /api/captures one after another (a pause of 0.2 s between them) and
prints, from that one run: the latency a client sees (request sent -> 201 received: p50, p90,
max), the server's own `capture_ms` (picking the frame, JPEG q95, thumbnail, fsync, rename,
SQLite commit), the inference p50 during captures against a run of the same length without
them (what capturing costs the pipeline), and the bytes on disk per capture (pictures,
thumbnails and the database, divided by the captures).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_naive import ensure_bundles
from bench_run import write_video
from model_cache import parser

MODEL = "mobilenet_v2_0.35_128"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=b"{}" if method == "POST" else None,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    body = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, body


def one_run(bundle: Path, video: Path, archive: Path | None, captures: int) -> dict:
    port = free_port()
    cmd = [sys.executable, "-m", "edge", "run", "--model", str(bundle), "--source", str(video),
           "--http", f"127.0.0.1:{port}", "--quiet", "--threads", "1"]
    if archive is not None:
        cmd += ["--archive", str(archive)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        time.sleep(1.0)
        client, server = [], []
        for _ in range(captures):
            t0 = time.perf_counter()
            if archive is not None:
                code, body = request(port, "POST", "/api/captures")
                if code != 201:
                    raise SystemExit(f"capture failed: {code} {body}")
                client.append((time.perf_counter() - t0) * 1e3)
                server.append(body["capture_ms"])
            time.sleep(0.2 if archive is not None else 0.25)
        stats = request(port, "GET", "/api/stats")[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return {"client_ms": client, "server_ms": server, "invoke_p50": stats["invoke_ms"]["p50"],
            "latency_p50": stats["latency_ms"]["p50"], "dropped": stats["frames"]["dropped"],
            "processed": stats["frames"]["processed"]}


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = parser(__doc__.splitlines()[0], "bench_run")
    ap.add_argument("--captures", type=int, default=40)
    ap.add_argument("--sizes", default="640x480,1280x720")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    bundle = ensure_bundles(args.cache)[MODEL]
    rows = []
    for size in args.sizes.split(","):
        w, h = (int(x) for x in size.split("x"))
        video = write_video(args.cache / f"camera_{w}x{h}_600.mp4", 30.0, 600, (w, h))
        work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
        try:
            base = one_run(bundle, video, None, args.captures)
            run = one_run(bundle, video, work / "archive", args.captures)
            files = [p for p in (work / "archive").rglob("*") if p.is_file() and p.name != "archive.lock"]
            pictures = sum(p.stat().st_size for p in files if p.parent.name == "images")
            thumbs = sum(p.stat().st_size for p in files if p.parent.name == "thumbs")
            total = sum(p.stat().st_size for p in files)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        n = len(run["client_ms"])
        row = {"size": size, "captures": n,
               "client_ms": {"p50": round(statistics.median(run["client_ms"]), 1),
                             "p90": round(pct(run["client_ms"], 0.9), 1), "max": round(max(run["client_ms"]), 1)},
               "server_ms_p50": round(statistics.median(run["server_ms"]), 1),
               "invoke_p50_ms": {"with_captures": run["invoke_p50"], "without": base["invoke_p50"]},
               "bytes_per_capture": {"total": total // n, "picture": pictures // n, "thumbnail": thumbs // n,
                                     "database": (total - pictures - thumbs) // n}}
        rows.append(row)
        c, b = row["client_ms"], row["bytes_per_capture"]
        print(f"{size}: {n} captures, request->stored p50 {c['p50']} ms, p90 {c['p90']} ms, max {c['max']} ms "
              f"(server {row['server_ms_p50']} ms); invoke p50 {run['invoke_p50']} ms with captures, "
              f"{base['invoke_p50']} ms without; {b['total'] / 1024:.0f} KB per capture "
              f"(picture {b['picture'] / 1024:.0f} KB, thumbnail {b['thumbnail'] / 1024:.1f} KB, "
              f"database {b['database'] / 1024:.1f} KB)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": os.uname().machine, "cpus": os.cpu_count(), "rows": rows},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
