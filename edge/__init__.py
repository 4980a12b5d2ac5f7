"""skin-edge device side: run a skin-lesion classifier bundle on a Raspberry Pi.

Only numpy, a TFLite runtime and OpenCV are needed here; TensorFlow is never imported.
"""

__version__ = "0.1.0"

DISCLAIMER = "Not a medical diagnosis. Research and education use only; see a dermatologist."
