"""Backends: which TFLite runtime runs a model, the Edge TPU delegate, device strings, threads."""
