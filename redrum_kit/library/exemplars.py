"""Exemplar selection by greedy Frank-Wolfe.

Pick the k columns of a feature matrix X `(dim, n)` from which every column
is best rebuilt as a non-negative combination:

    minimise_C  f(C) = 1/2 ||X - X C||_F^2,   C >= 0,  at most k non-zero rows.

Each step is a Frank-Wolfe step over the atoms of the feasible set: the
linear minimisation oracle on the gradient G = X^T (X C - X) picks the row
(candidate exemplar) whose negative gradient is largest, i.e. the sample that
most reduces the reconstruction error of the whole set; then the weights of
all chosen exemplars are re-fitted (the "fully corrective" variant), here by
projected gradient onto C >= 0 because mixes of sounds cannot have negative
weights. This is the exemplar selection the layering research uses to build
its source libraries.
"""

from __future__ import annotations

import numpy as np


def _fit_nonnegative(A: np.ndarray, X: np.ndarray, C0: np.ndarray, iters: int = 100) -> np.ndarray:
    """Projected-gradient NNLS for all columns of X at once: min ||X - A C||, C >= 0."""
    gram = A.T @ A
    step = 1.0 / (np.linalg.eigvalsh(gram)[-1] + 1e-12)
    AtX = A.T @ X
    C = C0
    for _ in range(iters):
        C = np.maximum(C - step * (gram @ C - AtX), 0.0)
    return C


def greedy_frank_wolfe(X: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """Choose `k` exemplar columns of `X` `(dim, n)`.

    Returns:
        (indices in the order chosen, relative residual ||X - X_S C|| / ||X||
        after each choice: a curve that shows how many exemplars are worth it).
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[1]
    k = min(k, n)
    chosen: list[int] = []
    residuals: list[float] = []
    total = np.linalg.norm(X) + 1e-12
    C = np.zeros((0, n))
    R = X.copy()  # residual X - X_S C
    for _ in range(k):
        # negative gradient of f w.r.t. row i of C, over all columns: x_i^T R
        # (the LMO of Frank-Wolfe over the l1,2 ball: the row of largest gradient norm)
        gain = np.linalg.norm(np.maximum(X.T @ R, 0.0), axis=1)
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        A = X[:, chosen]
        C = np.vstack([C, np.zeros((1, n))])
        C = _fit_nonnegative(A, X, C)
        R = X - A @ C
        residuals.append(float(np.linalg.norm(R) / total))
    return chosen, residuals
