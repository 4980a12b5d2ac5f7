"""`train fit` on two real worker processes under MultiWorkerMirroredStrategy (TF_CONFIG naming two
loopback ports): a worker killed mid-run, the survivor's one-line error, and both started again,
resuming from the backup and finishing one model (one test: each two-worker start costs a minute of
graph building).

Tiny model (96 px, alpha 0.35, no pretrained weights) on a small sample set; the test takes
about four minutes on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import free_ports

pytestmark = pytest.mark.slow

FIT = ["--image-size", "96", "--alpha", "0.35", "--weights", "none", "--batch-size", "16", "--fine-tune-epochs",
       "0", "--oversample", "--lr", "2e-3", "--json"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from train.data.sample_data import make_sample_dataset

    root = tmp_path_factory.mktemp("mw") / "data"
    make_sample_dataset(root, n_lesions=42, seed=3, size=(300, 225))
    return root


class Worker:
    def __init__(self, index: int, ports: list[int], data: Path, out: Path, epochs: int, logs: Path, tag: str):
        config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.stdout, self.stderr = logs / f"worker{index}.{tag}.json", logs / f"worker{index}.{tag}.err"
        cmd = [sys.executable, "-c", "from train.cli import main; main()", "fit", "--data", str(data), "--out", str(out), "--epochs",
               str(epochs), *FIT]
        with open(self.stdout, "wb") as out_f, open(self.stderr, "wb") as err_f:
            self.proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, env=env)

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"worker did not finish in {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def result(self) -> dict:
        return json.loads(self.stdout.read_text())


def two_workers(data: Path, out: Path, epochs: int, logs: Path, tag: str, ports: list[int]) -> list[Worker]:
    return [Worker(i, ports, data, out, epochs, logs, tag) for i in range(2)]


def keras_digest(path: Path) -> str:
    import keras

    from train.fit.training import weights_digest

    return weights_digest(keras.models.load_model(path, compile=False))


def test_killed_worker_restarts_and_resumes(data, tmp_path):
    out = tmp_path / "runs" / "run"
    backup = out.parent / "run.backup"
    ports = free_ports(2)
    first = two_workers(data, out, 4, tmp_path, "a", ports)
    meta = backup / "phase-1" / "training_metadata.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill worker 1 once epoch 2 is backed up
        try:
            if json.loads(meta.read_text())["epoch"] >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        assert first[0].proc.poll() is None and first[1].proc.poll() is None, first[0].log()[-2000:]
        time.sleep(0.2)
    else:
        pytest.fail("epoch 2 was never backed up:\n" + first[0].log()[-2000:])
    first[1].proc.send_signal(signal.SIGKILL)
    assert first[1].wait(30) == -signal.SIGKILL
    assert first[0].wait(180) == 1  # the survivor notices, says what to do and exits
    last = first[0].log().strip().splitlines()[-1]
    assert last.startswith("error: lost contact with another worker") and "start every worker again" in last, last
    assert "Traceback" not in first[0].log()
    assert not out.exists() and (backup / "state.json").is_file()

    # started again, the two train one model to the end (the whole of a two-worker run from here on)
    again = two_workers(data, out, 4, tmp_path, "b", free_ports(2))
    codes = [w.wait() for w in again]
    assert codes == [0, 0], "\n".join(w.log()[-2000:] for w in again)
    chief, other = (w.result() for w in again)
    assert (chief["chief"], other["chief"]) == (True, False)
    assert chief["replicas"] == other["replicas"] == 2 and chief["workers"] == 2
    assert "2 replica(s) (MultiWorker strategy)" in again[0].log()
    assert "Traceback" not in again[0].log() + again[1].log()
    for name in ("model.keras", "metrics.json", "labels.txt", "split.csv", "history.csv", "plots/history.png"):
        assert (out / name).is_file(), name
    assert chief["test"]["n"] == other["test"]["n"] > 0
    for w in again:
        log = w.log()
        resumed = [line for line in log.splitlines() if line.startswith("resuming from the backup")]
        assert resumed and resumed[0].endswith("phase 1, epoch 3"), log[-2000:]
        assert "epoch 1/4" not in log and "epoch 2/4" not in log and "epoch 4/4" in log
    run = json.loads((out / "run.json").read_text())
    assert run["epochs_run"] == 4
    assert run["workers"] == 2
    # both workers hold the weights the chief saved (BatchNorm statistics included)
    assert chief["weights_sha256"] == other["weights_sha256"] == run["weights_sha256"] == keras_digest(out / "model.keras")
    history = (out / "history.csv").read_text().strip().splitlines()
    assert [int(line.split(",")[0]) for line in history[1:]] == [0, 1, 2, 3]
    assert not backup.exists()  # removed once the run folder is written
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]


def test_backup_of_other_settings_is_refused(data, tmp_path):
    from train.errors import TrainError
    from train.fit.resume import Backup

    backup = Backup(tmp_path / "b", True, {"epochs": 4, "lr": 0.001})
    backup.save({"phase": 1, "speeds": [1.0]}, {"w": np.zeros(3, np.float32)})
    assert Backup(tmp_path / "b", True, {"epochs": 4, "lr": 0.001}).resuming
    with pytest.raises(TrainError, match=r"other settings \(lr\)"):
        Backup(tmp_path / "b", False, {"epochs": 4, "lr": 0.01})
    assert list(Backup(tmp_path / "b", True, {"epochs": 4, "lr": 0.001}).load_best()) == ["w"]
