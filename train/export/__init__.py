"""From a training run to a device bundle: int8 quantization with its gate, Edge TPU compile."""
