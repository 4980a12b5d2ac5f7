"""The TensorFlow side of `train fit`: distribution strategy, input pipelines, the two phases.

Kept apart from train/fit/run.py so that argument checks and dataset errors are reported before
TensorFlow is imported.
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from edge.data.datasets import Record
from edge.errors import first_line
from edge.ops import metrics as shared_metrics
from train.errors import TrainError
from train.fit.cluster import (
    is_chief,
    same_start,
    strategy_name,
    worker_count,
    worker_index,
)
from train.fit.inputs import (
    Decoder,
    Predictor,
    balanced_class_weights,
    decoded,
    eval_batches,
    oversampled_batches,
    training_batches,
    warm,
)
from train.fit.model import (
    build_model,
    compile_model,
    synchronize_batchnorm,
    unfreeze_model,
)
from train.fit.resume import Backup
from train.report import metrics as M

Report = Callable[[str], None]
MONITOR = "val_balanced_accuracy"


@dataclass(frozen=True)
class Outcome:
    metrics: dict
    epochs: int
    best_epoch: int
    best_score: float
    images_per_second: float
    seconds: float
    interrupted: bool
    images: dict[str, int]
    unreadable: int
    class_weights: dict[str, float] | None
    warnings: tuple[str, ...]
    strategy: str
    replicas: int
    weights_sha256: str = ""
    worker: int = 0
    workers: int = 1


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Inputs:
    train: tf.data.Dataset
    val: tf.data.Dataset
    steps_per_epoch: int
    n_train: int
    n_val: int
    class_weight: dict[int, float] | None
    unreadable: int
    warnings: tuple[str, ...]


def prepare_inputs(splits: Mapping[str, Sequence[Record]], labels: Sequence[str], cache: Path, settings,
                   report: Report) -> Inputs:
    """Decode train and val once (filling the disk cache) and build the epoch datasets."""
    index = {label: i for i, label in enumerate(labels)}
    decoder = Decoder(settings.image_size, settings.image_size)
    cache.mkdir(parents=True, exist_ok=True)
    report(f"reading {len(splits['train'])} training and {len(splits['val'])} validation images "
           f"at {settings.image_size}x{settings.image_size} (cached on disk after this pass)")
    val = decoded(splits["val"], index, decoder, cache / "val")
    n_val = warm(val)
    if settings.oversample:
        per_class = [[r for r in splits["train"] if r.label == label] for label in labels]
        streams = [decoded(recs, index, decoder, cache / f"train-{i}") for i, recs in enumerate(per_class) if recs]
        counts = [warm(ds) for ds in streams]
        streams = [ds for ds, n in zip(streams, counts) if n]
        n_train = sum(counts)
        train = oversampled_batches(streams, settings.batch_size, settings.seed) if streams else None
        steps, class_weight = max(1, math.ceil(n_train / settings.batch_size)), None
    else:
        train_ds = decoded(splits["train"], index, decoder, cache / "train")
        n_train = warm(train_ds)
        train = training_batches(train_ds, settings.batch_size, settings.seed)
        steps = max(1, math.ceil(n_train / settings.batch_size))
        failed = decoder.failed
        counts = [sum(1 for r in splits["train"] if r.label == label and str(r.path) not in failed) for label in labels]
        class_weight = balanced_class_weights(counts)
    warnings = _unreadable(decoder.failed, settings.strict) + _unlearnable(splits["train"], labels, decoder.failed)
    for warning in warnings:
        report(f"warning: {warning}")
    if n_train == 0 or n_val == 0:
        raise TrainError(f"no readable {'training' if n_train == 0 else 'validation'} images; "
                         "check the image files of the dataset")
    return Inputs(train, eval_batches(val, settings.batch_size), steps, n_train, n_val, class_weight,
                  len(decoder.failed), warnings)


def _unlearnable(train: Sequence[Record], labels: Sequence[str], failed: Mapping[str, str]) -> tuple[str, ...]:
    """A class with no readable training image is never learnt: say so instead of training silently."""
    usable = {label: 0 for label in labels}
    for r in train:
        if str(r.path) not in failed:
            usable[r.label] = usable.get(r.label, 0) + 1
    empty = [label for label, n in usable.items() if n == 0]
    if not empty:
        return ()
    return (f"no usable training image for {', '.join(empty)}: the model cannot learn "
            f"{'this class' if len(empty) == 1 else 'these classes'} and will never predict "
            f"{'it' if len(empty) == 1 else 'them'}; add readable images or replace the broken ones",)


def _unreadable(failed: Mapping[str, str], strict: bool) -> tuple[str, ...]:
    if not failed:
        return ()
    path, reason = next(iter(failed.items()))
    message = f"{len(failed)} image(s) could not be read (first: {reason})"
    if strict:
        raise TrainError(f"{message}; replace or remove them, or run without --strict to skip them")
    return (f"{message}; they were skipped",)


# ---------------------------------------------------------------- the per-epoch monitor


class Monitor(keras.callbacks.Callback):
    """Validation metrics each epoch (into logs, for the callbacks after it), best-weight keeping,
    images per second, and one progress line per epoch."""

    def __init__(self, val: tf.data.Dataset, n_train: int, total_epochs: int, report: Report,
                 backup: Backup | None = None) -> None:
        super().__init__()
        self.val, self.n_train, self.total, self.report = val, n_train, total_epochs, report  # images per epoch
        self.backup = backup or Backup(None)
        self.phase = 1
        self.phase1_done, self.phase1_epochs = False, 0
        self.best_score, self.best_epoch, self.best_weights = -1.0, -1, None
        self.speeds: list[float] = []
        self._predict: Predictor | None = None
        self._started = 0.0

    def resume(self) -> None:
        """Take up the state a previous, interrupted run of this worker left in the backup."""
        state = self.backup.state
        self.phase, self.phase1_done = int(state.get("phase", 1)), bool(state.get("phase1_done", False))
        self.phase1_epochs = int(state.get("phase1_epochs", 0))
        self.best_score, self.best_epoch = float(state.get("best_score", -1.0)), int(state.get("best_epoch", -1))
        self.speeds = [float(v) for v in state.get("speeds", [])]
        self.best_weights = self.backup.load_best()

    def state(self) -> dict:
        return {"phase": self.phase, "phase1_done": self.phase1_done, "phase1_epochs": self.phase1_epochs,
                "best_score": self.best_score,
                "best_epoch": self.best_epoch, "speeds": self.speeds}

    @staticmethod
    def _snapshot(model: keras.Model) -> dict:
        return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._started
        self._predict = self._predict or Predictor(self.model)
        y, probs = self._predict(self.val)
        cm = shared_metrics.confusion_matrix(y, probs.argmax(axis=1), probs.shape[1])
        score = shared_metrics.balanced_accuracy(cm)
        logs["val_loss"] = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1))))
        logs["val_accuracy"] = shared_metrics.accuracy(cm)
        logs[MONITOR] = score
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["images_per_second"] = self.n_train / seconds
        logs["phase"] = self.phase
        del self.speeds[epoch:]  # epochs run again after a resume replace their first try
        self.speeds.append(logs["images_per_second"])
        best = score > self.best_score
        if best:
            self.best_score, self.best_epoch = score, epoch
            self.best_weights = self._snapshot(self.model)
        self.backup.save(self.state(), self.best_weights if best else None)
        self.report(
            f"epoch {epoch + 1}/{self.total} phase {self.phase}  loss {logs.get('loss', float('nan')):.3f}  "
            f"acc {logs.get('accuracy', float('nan')):.3f}  val loss {logs['val_loss']:.3f}  "
            f"val acc {logs['val_accuracy']:.3f}  val bal acc {score:.3f}{' *' if best else '  '}  "
            f"lr {logs['learning_rate']:.1e}  {logs['images_per_second']:.0f} img/s  {seconds:.1f} s"
        )

    def restore_best(self) -> None:
        if self.best_weights is not None:
            for v in self.model.weights:
                v.assign(self.best_weights[v.path])


# ---------------------------------------------------------------- the two phases


def train(dataset, splits: Mapping[str, Sequence[Record]], tmp: Path, settings, strategy, report: Report) -> Outcome:
    """Train, keep the best epoch, save tmp/model.keras and evaluate on the test split."""
    try:
        return _train(dataset, splits, tmp, settings, strategy, report)
    except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError) as e:
        if worker_count(strategy) < 2:
            raise
        where = f"; they resume from the backup in {settings.backup_dir}" if settings.backup_dir else ""
        cause = re.sub(r"\{\{.*?\}\}\s*", "", first_line(e, limit=400))[:160]
        raise TrainError(f"lost contact with another worker ({cause}); start every worker "
                         f"again with the same command{where}") from None
    except tf.errors.ResourceExhaustedError:
        raise TrainError(f"out of memory at batch size {settings.batch_size} and {settings.image_size} px; "
                         "lower --batch-size or --image-size") from None
    except OSError as e:
        raise TrainError(f"cannot write {e.filename or tmp}: {e.strerror or e}; free disk space or choose "
                         "another --out") from None


def _train(dataset, splits: Mapping[str, Sequence[Record]], tmp: Path, settings, strategy, report: Report) -> Outcome:
    start = time.perf_counter()
    keras.utils.set_random_seed(settings.seed)
    if not tf.config.list_physical_devices("GPU"):
        tf.config.experimental.enable_op_determinism()  # free on the CPU; GPUs would pay for it
    labels = list(dataset.labels)
    pretrained = settings.weights != "none"
    with strategy.scope():  # first, so that a weights problem shows before minutes of decoding
        model = build_model(len(labels), image_size=settings.image_size, alpha=settings.alpha,
                            weights=settings.weights, dropout=settings.dropout, seed=settings.seed)
        compile_model(model, settings.lr)
        if strategy.num_replicas_in_sync > 1:
            synchronize_batchnorm(model)
    inputs = prepare_inputs(splits, labels, tmp / "cache", settings, report)
    total = settings.epochs + (settings.fine_tune_epochs if pretrained else 0)
    backup = Backup(settings.backup_dir, is_chief(strategy), settings.as_dict())
    monitor = Monitor(inputs.val, inputs.n_train, total, report, backup)
    balancing = "oversampling" if settings.oversample else "balanced class weights"
    report(f"{inputs.n_train} training / {inputs.n_val} validation images, {balancing}, "
           f"{strategy.num_replicas_in_sync} replica(s) ({strategy_name(strategy)} strategy)")
    if not pretrained:
        report("weights none: nothing to transfer, so the whole network trains in one phase of "
               f"{settings.epochs} epochs (--fine-tune-epochs is not used)")
    if backup.resuming:
        monitor.resume()
    phase = 2 if monitor.phase1_done else 1
    start_epoch = backup.resumed_epoch(phase) or (monitor.phase1_epochs if phase == 2 else 0)
    same_start(strategy, start_epoch, backup.root)
    if backup.resuming:
        report(f"resuming from the backup in {backup.root}: phase {phase}, epoch {start_epoch + 1}")
    interrupted = _run_phases(model, inputs, monitor, backup, tmp, settings, pretrained, strategy, report)
    monitor.restore_best()
    model.save(tmp / "model.keras")
    backup.collect(tmp)
    shutil.rmtree(tmp / "cache", ignore_errors=True)
    report(f"best epoch {monitor.best_epoch + 1}: validation balanced accuracy {monitor.best_score:.3f}; "
           f"evaluating on {len(splits['test'])} test images")
    try:
        metrics = evaluate_records(model, splits["test"], labels, settings.image_size, settings.batch_size)
        if is_chief(strategy):  # from the saved file: a plain model, whatever strategy trained it
            from train.fit.model import load_trained  # noqa: PLC0415
            from train.fit.trust import fit_trust  # noqa: PLC0415

            report("fitting the calibration temperature and the OOD statistics")
            metrics.update(fit_trust(load_trained(tmp / "model.keras", labels), splits, labels, settings.image_size,
                                     settings.batch_size, tmp))
    except KeyboardInterrupt:  # the model is trained and saved: keep it, without what was not computed
        report("interrupted during the test evaluation: the trained model is kept without test metrics; "
               "`train evaluate RUN` computes them")
        metrics, interrupted = {"n": 0, "evaluation": "interrupted"}, True
    return Outcome(
        metrics=metrics, epochs=len(monitor.speeds), best_epoch=monitor.best_epoch + 1,
        best_score=monitor.best_score, images_per_second=steady_speed(monitor.speeds),
        seconds=round(time.perf_counter() - start, 1), interrupted=interrupted,
        images={"train": inputs.n_train, "val": inputs.n_val, "test": metrics["n"]},
        unreadable=inputs.unreadable,
        class_weights={labels[i]: w for i, w in inputs.class_weight.items()} if inputs.class_weight else None,
        warnings=inputs.warnings, strategy=strategy_name(strategy), replicas=strategy.num_replicas_in_sync,
        weights_sha256=weights_digest(model), worker=worker_index(strategy), workers=worker_count(strategy),
    )


def weights_digest(model: keras.Model) -> str:
    """sha256 over every weight of `model`, in order: equal on every worker of a synchronous run."""
    digest = hashlib.sha256()
    for v in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(v)).tobytes())
    return digest.hexdigest()


def steady_speed(speeds: Sequence[float]) -> float:
    """Mean training images per second, leaving out the first epoch (graph building) when possible."""
    steady = speeds[1:] or speeds
    return round(float(np.mean(steady)), 1) if steady else 0.0


def _run_phases(model, inputs: Inputs, monitor: Monitor, backup: Backup, tmp: Path, settings, pretrained: bool,
                strategy, report: Report) -> bool:
    """Phase 1 (and phase 2 when pretrained); returns True when Ctrl-C cut training short."""
    history = backup.history(tmp)
    if backup.resuming:
        backup.trim_history(max(backup.resumed_epoch(1), backup.resumed_epoch(2)))
    logger = keras.callbacks.CSVLogger(str(history), append=True)
    try:
        if not monitor.phase1_done:
            _phase(model, inputs, monitor, logger, backup, 1, 0, settings.epochs, settings)
            monitor.phase1_done, monitor.phase1_epochs = True, len(monitor.speeds)
            backup.save(monitor.state(), None)
        if pretrained and settings.fine_tune_epochs > 0:
            monitor.restore_best()
            with strategy.scope():
                n = unfreeze_model(model, settings.fine_tune_layers, settings.fine_tune_lr)
            report(f"phase 2: fine-tuning the top {settings.fine_tune_layers} layers of the base "
                   f"({n} with weights, BatchNorm frozen) at lr {settings.fine_tune_lr:.1e}")
            monitor.phase = 2
            done = monitor.phase1_epochs
            _phase(model, inputs, monitor, logger, backup, 2, done, done + settings.fine_tune_epochs, settings)
        return False
    except KeyboardInterrupt:
        logger.on_train_end()  # close history.csv with the epochs completed
        if monitor.best_weights is None:
            raise
        report(f"interrupted: keeping the best model so far (epoch {monitor.best_epoch + 1})")
        return True


def _phase(model, inputs: Inputs, monitor: Monitor, logger, backup: Backup, phase: int, initial: int, epochs: int,
           settings) -> None:
    callbacks = [
        monitor,
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=settings.patience),
        keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, mode="max", factor=0.3,
                                          patience=max(1, settings.patience // 2), min_lr=1e-6),
        logger,
        *backup.callback(phase),  # last: an epoch is backed up only once everything above has seen it
    ]
    try:
        model.fit(inputs.train, epochs=epochs, initial_epoch=initial, steps_per_epoch=inputs.steps_per_epoch,
                  class_weight=inputs.class_weight, callbacks=callbacks, shuffle=False, verbose=0)
    finally:
        model._initial_epoch = None  # BackupAndRestore's resume point must not leak into the next phase


def evaluate_records(model, records: Sequence[Record], labels: Sequence[str], image_size: int,
                     batch_size: int) -> dict:
    """Metrics of `model` over `records` (unreadable images skipped and counted)."""
    y, probs, _ = predict_records(model, records, labels, image_size, batch_size)
    return M.evaluate_predictions(y, probs, labels)


def predict_records(model, records: Sequence[Record], labels: Sequence[str], image_size: int | tuple[int, int],
                    batch_size: int) -> tuple[np.ndarray, np.ndarray, list[Record]]:
    """(true label indices, probabilities, the records read) for every readable record, in order."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    decoder = Decoder(h, w)
    index = {label: i for i, label in enumerate(labels)}
    y, probs = Predictor(model)(eval_batches(decoded(records, index, decoder), batch_size))
    failed = decoder.failed
    kept = [r for r in records if str(r.path) not in failed]
    if not kept:
        raise TrainError(f"none of the {len(records)} images could be read; check the image files")
    return y, probs, kept


