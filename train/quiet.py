"""Keep TensorFlow's native start-up chatter off the terminal.

TensorFlow writes log lines straight to file descriptor 2 when it is imported (whatever
``TF_CPP_MIN_LOG_LEVEL`` says about some of them); a command's output and its one-line errors
should not be buried under them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from io import StringIO


@contextlib.contextmanager
def captured() -> Iterator[StringIO]:
    """Send Python and native stdout/stderr to a buffer while the block runs; hand it back as text."""
    text = StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as native:
        os.dup2(native.fileno(), 1)
        os.dup2(native.fileno(), 2)
        try:
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield text
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            native.seek(0)
            text.write(native.read().decode("utf-8", "replace"))


def import_tensorflow() -> None:
    """Import TensorFlow and Keras quietly; an import that fails shows what it printed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    error: BaseException | None = None
    with captured() as log:
        try:
            import keras  # noqa: F401, PLC0415
            import tensorflow  # noqa: F401, PLC0415
        except BaseException as e:  # noqa: BLE001  shown below, once the terminal is back
            error = e
    if error is not None:
        sys.stderr.write(log.getvalue())
        raise error
