"""Small helpers every layer may use: atomic file and folder writes, logging set-up."""
