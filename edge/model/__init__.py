"""The model: the bundle folder, the .tflite reader, the input/output spec, loading a model
onto a backend, and what is built on a loaded model (classify, verify, info)."""
