"""``train fit``: settings, the tf.data input pipeline, MobileNetV2, two-phase training, the run folder."""
