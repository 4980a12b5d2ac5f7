"""``edge doctor``'s model checks: the bundle's files, and one frame through it as ``edge run`` would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.device.checks import FAIL, PASS, WARN, Check, copy_again, from_error
from edge.device.hardware import Roots
from edge.errors import EdgeError

# --- the model --------------------------------------------------------------------------------

def find_model(model: Path | None, roots: Roots) -> tuple[Path | None, str]:
    """The bundle to check: the one given, else the installed one; (None, why) when there is none."""
    if model is not None:
        return model, ""
    current = roots.state_dir / "models/current"
    try:
        return (current, "") if current.exists() else (None, "no model given and none installed")
    except OSError:
        return None, f"no model given, and this user cannot read {roots.state_dir}"


def check_model(model: Path | None, why: str = "no model given") -> Check:
    from edge.model.bundle import checksum_report, open_bundle  # noqa: PLC0415

    if model is None:
        return Check("model", WARN, why, "Pass --model BUNDLE, or check the installed one as the service user: "
                     "sudo -u skin-edge edge doctor.")
    try:
        bundle = open_bundle(model, verify=False)
    except EdgeError as e:
        fix = f"{e.hint} Then check it with `edge verify --model {model}`." if e.hint else copy_again(model)
        return Check("model", FAIL, e.message, fix, {"path": str(model)})
    if bundle.root is None:
        return Check("model", PASS, f"{bundle.model_path} (a bare model: no checksums)", data={"path": str(model)})
    rows = checksum_report(bundle)
    bad = [r["file"] + (" missing" if r["actual"] is None else " damaged") for r in rows if not r["ok"]]
    data = {"path": str(bundle.root), "checksums": rows}
    if bad:
        return Check("model", FAIL, f"bundle {bundle.root}: {', '.join(bad)}",
                     copy_again(bundle.root), data)
    from edge.model.signing import check_trusted, describe, trusted_keys  # noqa: PLC0415

    try:
        keys = trusted_keys()
        signature = describe(bundle.root, keys)
        check_trusted(bundle.root, keys, str(model))
    except EdgeError as e:
        return Check("model", FAIL, f"bundle {bundle.name}: {e.message}", e.hint or copy_again(bundle.root),
                     {**data, "signature": "refused"})
    return Check("model", PASS, f"bundle {bundle.name}: {len(rows)} file(s), checksums match, {signature}",
                 data={**data, "signature": signature})


def check_smoke(model: Path | None, device: str, frame: Any = None) -> Check:
    """Load the model the way ``edge run`` does and classify one frame (a camera's, or synthetic)."""
    import time  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from edge.model.load import load_model  # noqa: PLC0415

    if model is None:
        return Check("smoke", WARN, "not run: no model", "Pass --model BUNDLE.")
    if frame is None:
        frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    try:
        t0 = time.perf_counter()
        m = load_model(model, device=device)
        t1 = time.perf_counter()
        result = m.classify(frame, k=1)
        t2 = time.perf_counter()
    except EdgeError as e:
        return from_error("smoke", FAIL, e, "See the model and runtime checks.")
    data = {"device": m.device, "runtime": f"{m.runtime.name} {m.runtime.version}",
            "load_ms": round((t1 - t0) * 1e3, 1), "frame_ms": round((t2 - t1) * 1e3, 2),
            "invoke_ms": round(result.invoke_ms, 2), "top": result.best.as_dict(), "notes": list(m.notes)}
    summary = (f"{m.path.name} on {m.device}: loaded in {data['load_ms']:.0f} ms, one frame in "
               f"{data['frame_ms']:.1f} ms (invoke {data['invoke_ms']:.1f} ms)")
    if m.notes:
        hint = ("pip install ai-edge-litert for the CPU." if all("tflite-runtime" in n for n in m.notes)
                else "See the edgetpu_library and edgetpu_devices checks.")
        return Check("smoke", WARN, f"{summary}; {' '.join(m.notes)}", hint, data)
    return Check("smoke", PASS, summary, data=data)
