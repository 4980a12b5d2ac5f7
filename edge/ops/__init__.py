"""Pure array work, no I/O beyond decoding: image decode, preprocess, postprocess, quality,
smoothing, metrics, annotation. Imports only numpy, OpenCV and edge.errors/edge.results."""
