"""``edge benchmark``: model latency, the pipeline over a source, accuracy on labelled images,
plots, and the facts about the machine the figures came from."""
