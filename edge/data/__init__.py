"""Dataset readers shared by training and the device (HAM10000, ISIC 2018, class folders).
Pure Python and numpy: no TensorFlow."""
