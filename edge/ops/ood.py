"""How unfamiliar an image is to the model: a Mahalanobis distance of its pooled features.

The model's pooled features (the input of its classifier layer) of the training images, centred on
their class means, are described by their top ``k`` principal directions plus one variance for
everything else (probabilistic PCA, a covariance shared by the classes). An image's score is its
distance to the nearest class mean under that covariance, divided by the feature dimension, so
familiar images score about 1 and anything the model was not trained on scores higher. The
threshold is the validation split's 95th percentile: 95% of familiar images pass.

Pure numpy, fitted in training, evaluated on the device in a few microseconds: two small
matrix-vector products per frame (features x basis, features x class means).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import BundleError

COMPONENTS = 64
PASS_FRACTION = 0.95
ARRAYS = ("means", "basis", "eigen", "residual")
METHOD = "mahalanobis (pooled features, class means, shared covariance: top principal components + residual)"


@dataclass(frozen=True)
class OodModel:
    means: np.ndarray  # (classes, D) class means of the training features
    basis: np.ndarray  # (D, k) orthonormal principal directions of the centred features
    eigen: np.ndarray  # (k,) their variances
    residual: float  # the variance of everything outside the basis
    threshold: float = float("inf")  # scores above it are unfamiliar

    def __post_init__(self) -> None:
        object.__setattr__(self, "_proj_means", self.means @ self.basis)
        object.__setattr__(self, "_sq_means", (self.means.astype(np.float64) ** 2).sum(axis=1))

    @property
    def dims(self) -> int:
        return int(self.means.shape[1])

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The score of each row of ``features`` (n, D)."""
        f = np.asarray(features, np.float32).reshape(-1, self.dims)
        z = (f @ self.basis)[:, None, :] - self._proj_means[None]  # (n, classes, k)
        z2 = z.astype(np.float64) ** 2
        inside = z2.sum(axis=2)
        full = (f.astype(np.float64) ** 2).sum(axis=1)[:, None] - 2 * (f @ self.means.T) + self._sq_means[None]
        outside = np.maximum(full - inside, 0.0)
        d = (z2 / self.eigen).sum(axis=2) + outside / self.residual
        return (d.min(axis=1) / self.dims).astype(np.float64)

    def score(self, features: np.ndarray) -> float:
        return float(self.scores(features)[0])

    def with_threshold(self, familiar_scores: np.ndarray, fraction: float = PASS_FRACTION) -> "OodModel":
        """The same model with the threshold that lets ``fraction`` of ``familiar_scores`` pass."""
        return OodModel(self.means, self.basis, self.eigen, self.residual,
                        float(np.quantile(np.asarray(familiar_scores, np.float64), fraction)))

    def save(self, path: Path) -> Path:
        with open(path, "wb") as f:
            np.savez(f, means=self.means.astype(np.float32), basis=self.basis.astype(np.float32),
                     eigen=self.eigen.astype(np.float32), residual=np.float32(self.residual))
        return path


def fit_ood(features: np.ndarray, y: np.ndarray, classes: int, components: int = COMPONENTS) -> OodModel:
    """Fit on training features (n, D) and their labels; classes without images are left out."""
    f = np.asarray(features, np.float64)
    y = np.asarray(y, np.int64)
    present = [c for c in range(classes) if (y == c).any()]
    if len(f) < 2 or not present:
        raise ValueError("too few training images to describe the features")
    means = np.stack([f[y == c].mean(axis=0) for c in present])
    centred = f - means[np.searchsorted(present, y)]
    cov = centred.T @ centred / len(f)
    eigen, vectors = np.linalg.eigh(cov)
    eigen, vectors = np.clip(eigen[::-1], 0, None), vectors[:, ::-1]
    dims = f.shape[1]
    k = max(1, min(components, dims, len(f) - len(present)))
    floor = max(float(eigen[0]), 1e-12) * 1e-6
    residual = float(eigen[k:].mean()) if k < dims else float(eigen[k - 1])
    return OodModel(means.astype(np.float32), vectors[:, :k].astype(np.float32),
                    np.maximum(eigen[:k], floor).astype(np.float32), max(residual, floor))


def load_ood(path: Path, threshold: object, dims: int | None = None) -> OodModel:
    """The OOD model a bundle stores (``ood.npz``) with model.json's threshold; BundleError otherwise."""
    where = f"{path.parent.name}/{path.name}"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: np.asarray(z[name], np.float32) for name in ARRAYS}
    except FileNotFoundError:
        raise BundleError(f"{where} is missing.", "Copy the whole bundle folder again.") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise BundleError(f"{where} is not a valid OOD file ({type(e).__name__}).",
                          "Copy the bundle again, or re-create it with `train quantize`.") from None
    means, basis, eigen, residual = (arrays[n] for n in ARRAYS)
    shapes_ok = (means.ndim == 2 and basis.ndim == 2 and eigen.ndim == 1 and residual.ndim == 0
                 and basis.shape[0] == means.shape[1] and basis.shape[1] == eigen.shape[0]
                 and (dims is None or means.shape[1] == dims))
    if not shapes_ok:
        raise BundleError(f"{where} does not fit the model's {dims} features.",
                          "Copy the bundle again, or re-create it with `train quantize`.")
    finite = all(np.isfinite(a).all() for a in (means, basis, eigen, residual))
    if not finite or eigen.min() <= 0 or residual <= 0:
        raise BundleError(f"{where} holds non-finite or non-positive variances.", "Re-create the bundle.")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold) \
            or threshold <= 0:
        raise BundleError(f"model.json: ood threshold {threshold!r} is not a positive number.",
                          "Re-create the bundle with `train quantize`.")
    return OodModel(means, basis, eigen, float(residual), float(threshold))


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The negative free energy -T logsumexp(logits / T) per row (higher: less familiar), for comparison."""
    z = np.asarray(logits, np.float64) / temperature
    m = z.max(axis=-1, keepdims=True)
    return -temperature * (m[..., 0] + np.log(np.exp(z - m).sum(axis=-1)))
