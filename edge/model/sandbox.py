"""The first load of a model file this device has not seen, in a child process with limits.

:mod:`edge.model.tflite_check` refuses every structural lie it knows of, but the native runtime is
large and a model file is a program. So the first time a file (by SHA-256) meets this device's
runtime, a child Python builds the interpreter, allocates its tensors and runs one invoke on zeros,
under a memory limit (``RLIMIT_AS``), a CPU-time limit and a wall-clock timeout, with core dumps
off. A crash, a hang or a runaway allocation there becomes one clear error in the parent (never a
dead daemon); a success is remembered (``seen-models.json`` in the state folder, see
:mod:`edge.model.variants`), so later loads cost nothing. Edge TPU files are not probed: the CPU
runtime cannot build them, and the check in :mod:`edge.model.tflite_check` has already run.

``SKIN_EDGE_SANDBOX=0`` turns the probe off (it costs about a second per new model file).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge.errors import ModelError

SEEN_FILE = "seen-models.json"
SEEN_ENV = "SKIN_EDGE_SEEN_MODELS"  # another file for the record (tests share one per session)
SWITCH_ENV = "SKIN_EDGE_SANDBOX"
TIMEOUT_S = 60.0
MEMORY_BYTES = 2 << 30  # the child's address space: Python, numpy and the runtime need ~0.2 GB
MAX_SEEN = 1000


def _memory_limit() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return MEMORY_BYTES
    return max(512 << 20, min(MEMORY_BYTES, int(total * 0.75)))


def _seen_path() -> Path | None:
    if os.environ.get(SEEN_ENV):
        return Path(os.environ[SEEN_ENV])
    from edge.model.variants import state_dirs  # noqa: PLC0415

    for d in state_dirs():
        if d.is_dir() and os.access(d, os.W_OK | os.X_OK):
            return d / SEEN_FILE
    return None


def _key(path: Path, runtime: Any) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"{h.hexdigest()}|{runtime.name} {runtime.version}|{platform.machine()}"


def _read_seen(path: Path | None) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else []
    except (OSError, ValueError):
        return []
    return [x for x in data if isinstance(x, str)] if isinstance(data, list) else []


def _remember(path: Path | None, key: str) -> None:
    if path is None:
        return
    from edge.util.atomic import write_text  # noqa: PLC0415

    seen = [k for k in _read_seen(path) if k != key][-(MAX_SEEN - 1):] + [key]
    try:
        write_text(path, json.dumps(seen) + "\n", fsync=False)
    except OSError:
        pass  # not remembered: probed again next time


def ensure_loadable(path: Path, runtime: Any) -> None:
    """Probe ``path`` in a child process unless this runtime already loaded this exact file here;
    ModelError in one line when the child crashed, hung, ran out of memory or failed."""
    if os.environ.get(SWITCH_ENV, "1") == "0":
        return
    seen_file = _seen_path()
    key = _key(path, runtime)
    if key in _read_seen(seen_file):
        return
    limit = _memory_limit()

    def limits() -> None:  # in the child, before it starts Python
        import resource  # noqa: PLC0415

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CPU, (int(TIMEOUT_S) + 5, int(TIMEOUT_S) + 10))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    where = f"{path} with {runtime.name} {runtime.version}"
    try:
        done = subprocess.run([sys.executable, "-m", "edge.model.sandbox", str(path)], capture_output=True,
                              text=True, timeout=TIMEOUT_S, preexec_fn=limits,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONFAULTHANDLER": ""})
    except subprocess.TimeoutExpired:
        raise ModelError(f"loading {where} did not finish in {TIMEOUT_S:.0f} s (tried in a separate process): "
                         "the model file makes the runtime hang.", "Do not use this file; re-export the model.") from None
    except OSError as e:
        raise ModelError(f"cannot start a process to try {path} ({e.strerror}).",
                         f"Where no child process can be started, {SWITCH_ENV}=0 loads models in this one.") from None
    if done.returncode == 0:
        _remember(seen_file, key)
        return
    said = [x for x in done.stdout.splitlines() if x.startswith("error: ")]
    if said:
        raise ModelError(f"{path} cannot be loaded by {runtime.name} {runtime.version}: {said[-1][7:].rstrip('.')}.",
                         "Check the model was converted for TFLite builtins (see `edge info`).")
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        why = ("it needed more than the {:.1f} GB allowed".format(limit / 2**30) if name == "SIGABRT" and
               ("bad_alloc" in done.stderr or "memory" in done.stderr.lower()) else f"it crashed the runtime ({name})")
        raise ModelError(f"{path} is refused: loading it with {runtime.name} {runtime.version} in a separate "
                         f"process, {why}.", "Do not use this file; re-export the model.")
    memory = "MemoryError" in done.stderr or "bad_alloc" in done.stderr
    raise ModelError(f"{path} is refused: loading it with {runtime.name} {runtime.version} in a separate process "
                     + (f"needed more than the {limit / 2**30:.1f} GB allowed." if memory
                        else f"failed (exit {done.returncode})."), "Do not use this file; re-export the model.")


def _child(path: str) -> int:
    """Build, allocate, invoke once on zeros: exit 0, or print one ``error:`` line and exit 3."""
    import numpy as np  # noqa: PLC0415

    from edge.backends.runtime import get_runtime  # noqa: PLC0415

    try:
        it = get_runtime().Interpreter(model_path=path, num_threads=1)
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        it.invoke()
        for d in it.get_output_details():
            it.get_tensor(d["index"])
    except (ValueError, RuntimeError) as e:
        print("error: " + (str(e).strip().splitlines() or [type(e).__name__])[0], flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
