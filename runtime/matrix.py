"""Whole-matrix operations that generated kernels hand to the runtime (NumPy matmul: BLAS)."""

from __future__ import annotations

import numpy as np


def orthogonalize(matrix: np.ndarray, a: float, b: float, c: float, steps: int,
                  eps: float) -> np.ndarray:
    """Muon's quintic Newton-Schulz iteration (torch.optim.Muon's _zeropower_via_newtonschulz),
    in the matrix's own dtype: X = G/max(norm(G), eps); ``steps`` times A = X X^T,
    X = a X + (b A + c A A) X; on the transpose when rows > cols."""
    if matrix.ndim != 2:
        raise ValueError(f"orthogonalize needs a 2-D matrix, got shape {matrix.shape}")
    dtype = matrix.dtype.type
    tall = matrix.shape[0] > matrix.shape[1]
    x = matrix.T if tall else matrix
    x = x / dtype(max(float(np.linalg.norm(x)), eps))
    a, b, c = dtype(a), dtype(b), dtype(c)
    for _ in range(int(round(steps))):
        gram = x @ x.T
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return np.ascontiguousarray(x.T if tall else x)


OPERATIONS = {"orthogonalize": orthogonalize}
