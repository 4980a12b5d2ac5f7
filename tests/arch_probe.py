"""Run by tests/test_aarch64.py under both the host's Python and the emulated aarch64 one.

Prints one JSON object: the machine, the versions, the pixel probe, and per image file the
SHA-256 of its decoded pixels and of its model input, and the int8 model's raw outputs.
Usage: python arch_probe.py BUNDLE IMAGE...
"""

import hashlib
import json
import platform
import sys


def main(bundle: str, images: list[str]) -> None:
    import cv2
    import numpy as np

    from edge.model.load import load_model
    from edge.ops.image import load_image
    from edge.ops.preprocess import fit_to_input, pixel_probe

    model = load_model(bundle, device="cpu", threads=1)
    out = {"machine": platform.machine(), "numpy": np.__version__, "opencv": cv2.__version__,
           "runtime": f"{model.runtime.name} {model.runtime.version}",
           "pixel_probe": pixel_probe(model.spec.height, model.spec.width), "images": {}}
    for path in images:
        rgb = load_image(path)
        pixels = fit_to_input(rgb, model.spec.height, model.spec.width)
        out["images"][path.rsplit("/", 1)[-1]] = {
            "decoded": hashlib.sha256(rgb.tobytes()).hexdigest(),
            "pixels": hashlib.sha256(pixels.tobytes()).hexdigest(),
            "raw": model.invoke(model.prepare(rgb)).reshape(-1).tolist(),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
