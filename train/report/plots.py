"""PNG plots of a run: confusion matrices, per-epoch curves, class distribution per split."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrices(cm: Sequence[Sequence[int]], labels: Sequence[str], folder: Path,
                       prefix: str = "confusion_matrix", title: str = "") -> list[Path]:
    """`<prefix>.png` (counts) and `<prefix>_normalised.png` (each row sums to 1)."""
    cm = np.asarray(cm, np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    normalised = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    paths = []
    for suffix, values, fmt, heading in (("", cm, "{:.0f}", "counts"),
                                         ("_normalised", normalised, "{:.2f}", "row-normalised (recall)")):
        fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(labels), 0.8 + 0.7 * len(labels)))
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if suffix else max(values.max(), 1))
        fig.colorbar(image, ax=ax, fraction=0.046)
        ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
               xlabel="predicted", ylabel="true", title=f"{title} confusion matrix, {heading}".strip())
        limit = values.max() / 2 if values.max() else 0.5
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8,
                    color="white" if v > limit else "black")
        paths.append(_save(fig, folder / f"{prefix}{suffix}.png"))
    return paths


def history_curves(history_csv: Path, folder: Path) -> Path:
    """Loss, accuracy, validation balanced accuracy and learning rate per epoch."""
    with open(history_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))

    def column(name: str) -> np.ndarray:
        return np.array([float(r[name]) if r.get(name) not in (None, "") else np.nan for r in rows])

    epochs = column("epoch") + 1
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    panels = (("loss", ("loss", "val_loss")), ("accuracy", ("accuracy", "val_accuracy")),
              ("validation balanced accuracy", ("val_balanced_accuracy",)), ("learning rate", ("learning_rate",)))
    for ax, (title, names) in zip(axes.flat, panels):
        for name in names:
            ax.plot(epochs, column(name), marker="o", markersize=3, label=name)
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1, 1].set_yscale("log")
    phases = column("phase")
    if len(phases) and np.nanmax(phases) > 1:  # mark where fine-tuning starts
        start = epochs[np.argmax(phases > 1)] - 0.5
        for ax in axes.flat:
            ax.axvline(start, color="grey", linestyle="--", linewidth=1)
    return _save(fig, folder / "history.png")


def class_distribution(counts: Mapping[str, Mapping[str, int]], labels: Sequence[str], folder: Path) -> Path:
    """Images per class for each split (`counts[split][label]`), side by side, log scale."""
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(labels), 4))
    width = 0.8 / max(len(counts), 1)
    x = np.arange(len(labels))
    for k, (split, per_label) in enumerate(counts.items()):
        values = [per_label.get(label, 0) for label in labels]
        bars = ax.bar(x + (k - (len(counts) - 1) / 2) * width, values, width, label=split)
        ax.bar_label(bars, fontsize=7)
    ax.set(xticks=x, xticklabels=labels, ylabel="images", title="class distribution per split")
    ax.set_yscale("symlog", linthresh=10)
    ax.legend()
    return _save(fig, folder / "class_distribution.png")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability_diagram(figures: dict, path: Path, title: str = "") -> Path:
    """Accuracy against confidence per bin, before and after temperature scaling (the diagonal is
    perfect calibration); the ECE of each in the legend."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for key, ece_key, colour, name in (("reliability_uncalibrated", "ece_uncalibrated", "tab:red", "uncalibrated"),
                                       ("reliability", "ece", "tab:blue", f"T = {figures['temperature']:.2f}")):
        r = figures[key]
        pts = [(c, a, n) for c, a, n in zip(r["confidence"], r["accuracy"], r["count"]) if n]
        if pts:
            conf, acc, n = map(np.asarray, zip(*pts))
            ax.plot(conf, acc, marker="o", color=colour, label=f"{name}: ECE {figures[ece_key]:.3f}")
            ax.scatter(conf, acc, s=10 + 90 * n / n.max(), color=colour, alpha=0.3)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top score)", ylabel="accuracy",
           title=f"{title} reliability, {figures['reliability']['bins']} bins".strip())
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)
