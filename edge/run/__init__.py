"""``edge run``: the pipeline from frames to results, its running statistics, the config file,
and the daemon that wires a source, a model and the outputs together."""
