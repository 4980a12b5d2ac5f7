"""Training data: the synthetic sample dataset and the calibration set for int8 quantization.
(Reading HAM10000 / ISIC / folders is edge.data.datasets, shared with the device.)"""
