"""Resuming an interrupted `train fit`: Keras's BackupAndRestore plus the state of the two phases.

With a backup folder (``--backup-dir``, or ``RUN.backup/`` next to the run folder whenever
``TF_CONFIG`` names a cluster) the chief keeps there, after every epoch:

- ``phase-1/``, ``phase-2/``: BackupAndRestore's folders (the weights and optimizer state after
  the last finished epoch of that phase, and the epoch number; two generations, so a chief killed
  while writing one falls back to the other);
- ``state.json``: which phase is running, whether phase 1 finished and after how many epochs, the
  best epoch so far with its score, and the speed of each epoch;
- ``best.npz``: the weights of the best epoch so far (model selection survives a restart);
- ``history.csv``: the per-epoch log, copied into the run folder at the end.

A run started again with the same command finds them and goes on from the epoch after the last
one backed up. In a multi-worker run every worker restores from the chief's folder (the workers
hold the same weights after every synchronous step, so one copy is the truth for all of them),
which is why the folder must be one shared path, like the dataset; the other workers write their
own backups to a private temporary folder. The workers check that they resume from the same
epoch before training goes on. The folder is removed once the run folder has been written. Early
stopping and learning-rate reduction count their patience afresh after a resume.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edge.util.atomic import write_text
from train.errors import TrainError

STATE = "state.json"
BEST = "best.npz"
HISTORY = "history.csv"
METADATA = ("training_metadata.json", "training_metadata.json.bkp")


class Backup:
    """The backup folder of a run, seen by one worker; every method is a no-op when `root` is None."""

    def __init__(self, root: str | Path | None, chief: bool = True, settings: dict | None = None) -> None:
        self.root = None if root is None else Path(root)
        self.chief, self.settings = chief, settings or {}
        self.state: dict = {}
        self._private: Path | None = None
        if self.root is not None and (self.root / STATE).is_file():
            try:
                self.state = json.loads((self.root / STATE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.state = {}  # a state file cut short: start afresh
        saved = self.state.get("settings")
        if saved is not None and saved != json.loads(json.dumps(self.settings)):
            changed = sorted(k for k in set(saved) | set(self.settings) if saved.get(k) != self.settings.get(k))
            raise TrainError(f"{self.root} is the backup of a run with other settings ({', '.join(changed)}); "
                             "run the same command to resume it, or delete the folder to start afresh")

    @property
    def resuming(self) -> bool:
        return bool(self.state)

    def history(self, tmp: Path) -> Path:
        """Where the per-epoch CSV goes: the chief's backup folder (it must outlive a restart) or tmp."""
        if self.root is None or not self.chief:
            return tmp / HISTORY
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / HISTORY

    def callback(self, phase: int) -> list:
        """BackupAndRestore for `phase`: the chief's shared folder, or a private copy of it."""
        if self.root is None:
            return []
        import keras  # noqa: PLC0415  (this module is also imported before TensorFlow is)

        folder = self.root / f"phase-{phase}"
        if not self.chief:
            self._private = self._private or Path(tempfile.mkdtemp(prefix="skin-edge-backup-"))
            private = self._private / folder.name
            shutil.rmtree(private, ignore_errors=True)
            if folder.is_dir():
                shutil.copytree(folder, private)
            folder = private
        return [keras.callbacks.BackupAndRestore(str(folder), double_checkpoint=True, delete_checkpoint=False)]

    def resumed_epoch(self, phase: int) -> int:
        """The epoch BackupAndRestore will start `phase` from (0 when it has nothing)."""
        if self.root is None:
            return 0
        for name in METADATA:
            try:
                meta = json.loads((self.root / f"phase-{phase}" / name).read_text(encoding="utf-8"))
                return int(meta["epoch"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return 0

    def save(self, state: dict, best_weights: dict | None) -> None:
        """After an epoch (chief only): the best weights first when they changed, then the state."""
        self.state = state = {**state, "settings": self.settings}
        if self.root is None or not self.chief:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if best_weights is not None:
            partial = self.root / f".partial-{BEST}"
            with open(partial, "wb") as f:
                np.savez(f, **{f"w{i}": w for i, w in enumerate(best_weights.values())},
                         names=np.array(list(best_weights), dtype=str))
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, self.root / BEST)
        write_text(self.root / STATE, json.dumps(state))

    def load_best(self) -> dict | None:
        """The saved best weights ({variable path: array}), or None."""
        if self.root is None or not (self.root / BEST).is_file():
            return None
        with np.load(self.root / BEST) as saved:
            names = [str(n) for n in saved["names"]]
            return {name: saved[f"w{i}"] for i, name in enumerate(names)}

    def trim_history(self, epochs: int) -> None:
        """Drop history rows of epochs that will run again (written before their backup was)."""
        path = None if self.root is None or not self.chief else self.root / HISTORY
        if path is None or not path.is_file():
            return
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if len(rows) > 1:
            kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epochs]
            write_text(path, "".join(",".join(r) + "\n" for r in kept))

    def collect(self, tmp: Path) -> None:
        """Copy the history into the run's temporary folder; drop this worker's private copy."""
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
        if self.root is not None and self.chief and (self.root / HISTORY).is_file():
            shutil.copyfile(self.root / HISTORY, tmp / HISTORY)


def remove_backup(root: str | Path | None) -> None:
    """Remove the backup folder once the run folder it served is written (the chief's job)."""
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
