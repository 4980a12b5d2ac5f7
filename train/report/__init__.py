"""Evaluation of a run: metrics (AUC and the training curves' extras), plots, ``train evaluate``."""
