"""Where a bundle came from, written into its model.json: the run, the data, the versions."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from edge.model.bundle import sha256_file
from train.data.sample_data import is_sample_data


def trained_on(r: Any) -> dict[str, Any]:
    """What a person is told the model learnt from (the live page, the archive)."""
    roots = list(r.roots)
    synthetic = [is_sample_data(p) for p in roots]
    return {"data": " + ".join(p.name for p in roots), "layout": r.info.get("layout"), "synthetic": any(synthetic),
            "train_images": len(r.splits["train"]), "description": " + ".join(
                f"{p.name} (synthetic sample data)" if s else p.name for p, s in zip(roots, synthetic))}


def provenance(r: Any) -> dict[str, Any]:
    """The run, its split and Keras file by checksum, and the versions that made the bundle."""
    from importlib import metadata  # noqa: PLC0415

    from edge.backends.runtime import get_runtime  # noqa: PLC0415

    def version(dist: str) -> str | None:
        for d in (dist, f"{dist}-cpu"):
            try:
                return metadata.version(d)
            except metadata.PackageNotFoundError:
                continue
        return None

    rt = get_runtime()
    return {"run": str(r.root.resolve()), "run_json": r.info, "dataset_root": str(r.data.resolve()),
            "split_sha256": sha256_file(r.root / "split.csv"),
            "model_keras_sha256": sha256_file(r.root / "model.keras"),
            "versions": {"tensorflow": version("tensorflow"), "keras": version("keras"), "numpy": np.__version__,
                         "evaluation_runtime": f"{rt.name} {rt.version}", "python": sys.version.split()[0]}}
