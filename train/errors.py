"""Training-side errors. They share the device side's base class, so both CLIs report them alike."""

from edge.errors import EdgeError


class TrainError(EdgeError):
    """A training, evaluation or conversion step cannot go on; the message says why and what to do."""
