"""Training toolkit for the skin-lesion classifier."""
