"""Fuzz the device's parsers for a bounded time, from the committed seed corpus.

    .venv/bin/python fuzz/run.py TARGET [--seconds 60]      # tflite, image, config, http
    .venv/bin/python fuzz/run.py all --seconds 60 --jobs 2  # each target in its own process
    .venv/bin/python fuzz/run.py all --replay               # every seed and every past finding, once

With atheris installed (the test extra, x86-64) the fuzzing is coverage-guided (libFuzzer over
edge's instrumented code); without it, a plain mutation loop (byte flips, inserts, cuts, splices of
the seeds) runs instead. Seeds are in fuzz/corpus/TARGET/ and are never written to (libFuzzer's
new inputs go to a temporary folder). A finding (an exception other than the project's one-line
errors, a crash, a hang over 10 s) is written to fuzz/crashes/TARGET/ with its traceback, and the
run exits 1: commit the file, fix the bug, and tests/test_fuzz.py replays it from then on.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAMES = ("tflite", "image", "config", "http")
RSS_LIMIT_MB = int(os.environ.get("FUZZ_RSS_LIMIT_MB", "3072"))  # an input that makes a decoder take more is a finding
MAX_LEN = {"tflite": 65536, "image": 65536, "config": 8192, "http": 8192}


def seeds(name: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((HERE / "corpus" / name).iterdir()) if p.is_file()]


def findings(name: str) -> list[Path]:
    folder = HERE / "crashes" / name
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".txt")) if folder.is_dir() else []


def _record(name: str, data: bytes, why: str) -> Path:
    folder = HERE / "crashes" / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"finding-{hashlib.sha256(data).hexdigest()[:16]}"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(why)
    return path


def mutate(data: bytes, rng: random.Random, pool: list[bytes], limit: int) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(6)
        pos = rng.randrange(len(b) + 1) if b else 0
        if op == 0 and b:  # one byte anything
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1 and b:  # an interesting value
            b[min(pos, len(b) - 1)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
        elif op == 2:  # insert a few bytes
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and b:  # cut a piece
            del b[pos:pos + rng.randint(1, 64)]
        elif op == 4 and b:  # a 32-bit little-endian integer (FlatBuffer offsets, sizes)
            value = rng.choice((0, 1, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 32), len(b)))
            b[pos:pos + 4] = value.to_bytes(4, "little")
        elif op == 5 and pool:  # splice in a piece of another seed
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            b[pos:pos] = other[start:start + rng.randint(1, 256)]
    return bytes(b[:limit])


def plain_loop(name: str, seconds: float, seed: int) -> int:
    """The mutation loop without coverage feedback (where atheris is not installed)."""
    sys.path.insert(0, str(HERE))
    from targets import TARGETS

    target, pool = TARGETS[name], seeds(name)
    rng, runs = random.Random(seed), 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = mutate(rng.choice(pool), rng, pool, MAX_LEN[name])
        try:
            target(data)
        except Exception:  # noqa: BLE001 - a finding
            path = _record(name, data, traceback.format_exc())
            print(f"{name}: FINDING after {runs} runs, written to {path}\n{traceback.format_exc()}", flush=True)
            return 1
        runs += 1
    print(f"{name}: {runs} inputs in {seconds:.0f} s (mutation loop, no coverage feedback), no finding", flush=True)
    return 0


def atheris_run(name: str, seconds: float, seed: int = 0) -> int:
    """Coverage-guided: libFuzzer via atheris over edge's instrumented modules."""
    import atheris

    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=["edge"]):
        from targets import TARGETS

        import edge.model.tflite_file  # noqa: F401
        import edge.ops.image  # noqa: F401
        import edge.outputs.handler  # noqa: F401
        import edge.run.config  # noqa: F401
    target = TARGETS[name]
    work = Path(tempfile.mkdtemp(prefix=f"edge-fuzz-{name}-"))
    for i, data in enumerate(seeds(name)):
        (work / f"seed-{i}").write_bytes(data)
    crashes = HERE / "crashes" / name
    crashes.mkdir(parents=True, exist_ok=True)

    args = [sys.argv[0], str(work), f"-max_total_time={int(seconds)}", f"-max_len={MAX_LEN[name]}", f"-seed={seed}",
            "-timeout=10", f"-rss_limit_mb={RSS_LIMIT_MB}", f"-artifact_prefix={crashes}/", "-print_final_stats=1"]
    atheris.Setup(args, target)
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def replay(name: str) -> int:
    """Every seed and every recorded finding through the target once; 1 when any still fails."""
    sys.path.insert(0, str(HERE))
    from targets import TARGETS

    bad = 0
    for path in [*(HERE / "corpus" / name).iterdir(), *findings(name)]:
        try:
            TARGETS[name](path.read_bytes())
        except Exception:  # noqa: BLE001
            bad += 1
            print(f"{name}: {path} still fails:\n{traceback.format_exc()}", flush=True)
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", choices=(*NAMES, "all"))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=1, help="targets run at once with 'all'")
    ap.add_argument("--seed", type=int, default=0, help="the mutation loop's random seed")
    ap.add_argument("--replay", action="store_true", help="run the seeds and past findings once, no fuzzing")
    ap.add_argument("--plain", action="store_true", help="the mutation loop even where atheris is installed")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.target == "all":
        return _all(args)
    if args.replay:
        return replay(args.target)
    try:
        import atheris  # noqa: F401
    except ImportError:
        args.plain = True
    return plain_loop(args.target, args.seconds, args.seed) if args.plain else atheris_run(args.target, args.seconds, args.seed)


def _all(args: argparse.Namespace) -> int:
    """Each target in a child process, ``--jobs`` at a time; 1 when any found something."""
    extra = ["--replay"] if args.replay else ["--seconds", str(args.seconds), "--seed", str(args.seed)]
    extra += ["--plain"] if args.plain else []
    pending, running, failed = list(NAMES), [], []
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            name = pending.pop(0)
            running.append((name, subprocess.Popen([sys.executable, __file__, name, *extra], cwd=ROOT)))
        for name, proc in list(running):
            if proc.poll() is not None:
                running.remove((name, proc))
                if proc.returncode:
                    failed.append(f"{name} (exit {proc.returncode})")
        time.sleep(0.2)
    if failed:
        print(f"fuzz: findings in {', '.join(failed)}: see fuzz/crashes/", flush=True)
        return 1
    print(f"fuzz: {', '.join(NAMES)}: no finding", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
