"""Which of a bundle's model files runs: the one asked for, or the fastest measured on this device.

A bundle can carry several files of one model (``VARIANTS``): ``int8`` (model.tflite, uint8 in
and out, the default), ``int8io`` (the same model with int8 in and out: no QUANTIZE ops at its
ends, identical outputs), ``float`` (the float32 model int8 was checked against) and ``edgetpu``.
Which is fastest depends on the CPU and runtime (on one x86 CPU the small int8 demo model is
slower than its float one), so it is measured, not assumed: ``edge benchmark --all-variants``
times every file on this device and records the fastest that is correct here (int8 and int8io
must reproduce the golden outputs; float is the reference int8 was gated against; edgetpu counts
only where the Edge TPU ran it). ``--variant fastest`` on ``edge run``/``classify`` then loads
that file and says so; nothing changes the file that runs unless asked.

The record is a small JSON file outside the bundle (bundles are checksummed and may be read-only):
``$STATE_DIRECTORY`` (set by systemd for the service), else /var/lib/skin-edge when this user can
write it, else ``~/.local/state/skin-edge``. Entries are keyed by the SHA-256 of model.json, the
machine, the runtime and the thread count, so a changed bundle or runtime is measured again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, EdgeError
from edge.model.bundle import META_FILE, VARIANTS, Bundle
from edge.util.atomic import write_text
from edge.util.files import read_capped

RECORD_FILE = "variants.json"
FASTEST = "fastest"
DEFAULT = "int8"
CHOICES = (*VARIANTS, FASTEST)
RECORD_MAX_BYTES = 1 << 20


def state_dirs() -> list[Path]:
    """Where a record may live, in the order they are read (the first writable one is written)."""
    dirs = [Path(d) for d in os.environ.get("STATE_DIRECTORY", "").split(":") if d]
    dirs.append(Path("/var/lib/skin-edge"))
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    dirs.append(Path(base) / "skin-edge")
    return list(dict.fromkeys(dirs))


def _writable_dir() -> Path:
    for d in state_dirs():
        if d.is_dir() and os.access(d, os.W_OK | os.X_OK):
            return d
    last = state_dirs()[-1]
    try:
        last.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"Cannot create {last} to record the fastest variant ({e.strerror or e}).",
                          "Set XDG_STATE_HOME to a writable folder.") from None
    return last


def bundle_key(bundle: Bundle) -> str | None:
    """SHA-256 of the bundle's model.json (it lists every file's checksum): None for a bare file."""
    if bundle.root is None:
        return None
    return hashlib.sha256((bundle.root / META_FILE).read_bytes()).hexdigest()


def parse_variant(text: str | None) -> str | None:
    if text is None:
        return None
    v = text.strip().lower()
    if v not in CHOICES:
        raise ConfigError(f"Unknown variant {text!r}.", f"Use one of {', '.join(CHOICES)}.")
    return v


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_capped(path, RECORD_MAX_BYTES, "variant record"))
    except (OSError, ValueError, RecursionError, EdgeError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("bundles"), dict) else {}


def _entry_key(runtime: str, threads: int, device: str) -> str:
    return f"{platform.machine()}|{runtime}|{threads}|{device}"


def record_fastest(bundle: Bundle, rows: list[dict[str, Any]], *, runtime: str, threads: int,
                   device: str) -> tuple[Path, str] | None:
    """Record the fastest eligible row (``variant``, ``p50_ms``, ``eligible``, ``why``); (file, variant).

    None when no row is eligible or the bundle is a bare file.
    """
    key = bundle_key(bundle)
    eligible = [r for r in rows if r.get("eligible") and r.get("p50_ms")]
    if key is None or not eligible:
        return None
    best = min(eligible, key=lambda r: r["p50_ms"])
    path = _writable_dir() / RECORD_FILE
    data = _load(path) or {"format": "skin-edge-variants", "bundles": {}}
    entry = data["bundles"].setdefault(key, {})
    entry["name"], entry["path"] = bundle.name, str(bundle.root)
    entry.setdefault("measured", {})[_entry_key(runtime, threads, device)] = {
        "fastest": best["variant"], "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "runtime": runtime, "threads": threads, "device": device, "machine": platform.machine(),
        "p50_ms": {r["variant"]: r["p50_ms"] for r in rows if r.get("p50_ms")},
        "not_eligible": {r["variant"]: r.get("why") for r in rows if not r.get("eligible")}}
    write_text(path, json.dumps(data, indent=2) + "\n")
    return path, best["variant"]


def recorded_fastest(bundle: Bundle, *, runtime: str, threads: int, device: str) -> dict[str, Any] | None:
    """The record for this bundle, machine, runtime, device and thread count, else the closest one
    for this runtime here (another thread count or device mode), or None."""
    key = bundle_key(bundle)
    if key is None:
        return None
    for d in state_dirs():
        measured = (_load(d / RECORD_FILE).get("bundles", {}).get(key) or {}).get("measured") or {}
        exact = measured.get(_entry_key(runtime, threads, device))
        if exact is None:  # the same runtime here, preferring the same device, then the same thread count;
            # another device's record counts unless its pick is the Edge TPU file
            same = [m for m in measured.values() if isinstance(m, dict) and m.get("runtime") == runtime
                    and m.get("machine") == platform.machine()
                    and (m.get("device") == device or m.get("fastest") != "edgetpu")]
            same.sort(key=lambda m: (m.get("device") != device, m.get("threads") != threads))
            exact = same[0] if same else None
        if isinstance(exact, dict) and exact.get("fastest") in VARIANTS:
            return exact
    return None


def describe_choice(variant: str, record: dict[str, Any] | None) -> str:
    """The line that says which variant runs when it was chosen as the fastest."""
    if record is None:
        return (f"--variant fastest: no variant was measured for this bundle on this device with this runtime; "
                f"running {VARIANTS[DEFAULT]}. Run `edge benchmark --model BUNDLE --all-variants` to measure them.")
    times = record.get("p50_ms") or {}
    others = ", ".join(f"{v} {ms:.3g} ms" for v, ms in sorted(times.items(), key=lambda kv: kv[1]) if v != variant)
    return (f"variant {variant} ({VARIANTS[variant]}): the fastest measured on this device "
            f"(p50 {times.get(variant, float('nan')):.3g} ms{'; ' + others if others else ''}; "
            f"{record.get('runtime')}, {record.get('threads')} thread(s), {str(record.get('when', ''))[:10]})")
