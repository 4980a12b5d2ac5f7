"""Every file the device tools read is a regular file under a size cap, checked before reading:
a FIFO, a device, a huge or sparse file, a config nested too deeply each give one line, exit 1,
and never block, grow without bound or raise a traceback."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from edge.cli import app

runner = CliRunner()


def one_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture()
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def sparse(path, size: int = 40_000_000_000):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_models_that_are_not_regular_files(fifo, tmp_path):
    assert "is a character device, not a model file" in one_line(runner.invoke(app, ["info", "/dev/zero"]))
    assert "is a FIFO, not a model file" in one_line(runner.invoke(app, ["info", str(fifo)]))
    huge = sparse(tmp_path / "huge.tflite")
    assert "is larger than a model file can be (1,000 MB)" in one_line(runner.invoke(app, ["info", str(huge)]))


def test_labels_that_are_not_regular_files(bundle_dir, fifo, tmp_path, colour_files):
    image = str(next(iter(colour_files.values())))
    for labels, needle in (("/dev/zero", "is a character device, not a labels file"),
                           (str(fifo), "is a FIFO, not a labels file"),
                           (str(sparse(tmp_path / "labels.txt")), "is larger than a labels file can be (1 MB)")):
        line = one_line(runner.invoke(app, ["classify", image, "--model", str(bundle_dir / "model.tflite"),
                                            "--labels", labels]))
        assert needle in line, line


def test_configs_that_are_not_regular_files_or_too_deep(fifo, tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    cases = (("/dev/zero", "is a character device, not a config file"), (str(fifo), "is a FIFO, not a config file"),
             (str(sparse(tmp_path / "big.toml")), "is larger than a config file can be (1 MB)"),
             (str(deep), "nested too deeply to be a config"))
    for config, needle in cases:
        line = one_line(runner.invoke(app, ["run", "--config", config, "--model", "m", "--source", "s"]))
        assert needle in line, line


def test_a_bundle_description_that_is_not_a_regular_file(bundle_dir, tmp_path):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    (copy / "model.json").unlink()
    os.mkfifo(copy / "model.json")
    assert "is a FIFO, not a model.json file" in one_line(runner.invoke(app, ["info", str(copy)]))
