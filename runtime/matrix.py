"""Whole-matrix operations that generated kernels hand to the runtime (NumPy matmul: BLAS)."""

from __future__ import annotations

import numpy as np


def orthogonalize(matrix: np.ndarray, a: float, b: float, c: float, steps: int,
                  eps: float, precision: str | None = None) -> np.ndarray:
    """Muon's quintic Newton-Schulz iteration (torch.optim.Muon's _zeropower_via_newtonschulz):
    X = G/max(norm(G), eps); ``steps`` times A = X X^T, X = a X + (b A + c A A) X; on the
    transpose when rows > cols. In the matrix's own dtype (NumPy's BLAS), or with
    ``precision="bfloat16"`` in bfloat16 through torch's matmuls, as torch.optim.Muon runs it
    (NumPy has no bfloat16 matmul); the result then comes back widened to the matrix's dtype.

    Five BLAS calls a round, no allocation inside the loop: A = X X^T and A A = A A^T (A is
    symmetric) go to BLAS as symmetric rank-k updates (NumPy calls ``syrk`` for ``x @ x.T``),
    the polynomial's terms are combined in place in two m x m buffers and X in two m x n
    ones. The transpose of a tall matrix is a strided view, never copied: the buffers take its
    layout, so the result's transpose is C-contiguous again."""
    if matrix.ndim != 2:
        raise ValueError(f"orthogonalize needs a 2-D matrix, got shape {matrix.shape}")
    if precision == "bfloat16":
        return _orthogonalize_bfloat16(matrix, a, b, c, steps, eps)
    if precision is not None:
        raise ValueError(f"orthogonalize precision must be None or 'bfloat16', got {precision!r}")
    dtype = matrix.dtype.type
    tall = matrix.shape[0] > matrix.shape[1]
    source = matrix.T if tall else matrix
    x = np.empty_like(source)  # order "K": F-ordered for a tall matrix's transpose
    np.divide(source, dtype(max(float(np.linalg.norm(source)), eps)), out=x)
    a, b, c = dtype(a), dtype(b), dtype(c)
    rows = x.shape[0]
    gram = np.empty((rows, rows), x.dtype)
    square = np.empty_like(gram)
    product = np.empty_like(x)
    for _ in range(int(round(steps))):
        np.matmul(x, x.T, out=gram)                 # A = X X^T (syrk)
        np.matmul(gram, gram.T, out=square)         # A A = A A^T (syrk)
        square *= c
        gram *= b
        gram += square                              # B = b A + c A A
        np.matmul(gram, x, out=product)             # B X
        x *= a
        x += product                                # X = a X + B X
    return x.T if tall else x


def _orthogonalize_bfloat16(matrix: np.ndarray, a: float, b: float, c: float, steps: int,
                            eps: float) -> np.ndarray:
    """torch.optim.Muon's _zeropower_via_newtonschulz line by line (the same torch calls, so
    the same bits), on ``matrix`` rounded to bfloat16; widened back to the matrix's dtype."""
    import torch  # only the torch front end asks for bfloat16

    x = torch.from_numpy(matrix).bfloat16()
    tall = matrix.shape[0] > matrix.shape[1]
    if tall:
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(int(round(steps))):
        gram = x @ x.T
        update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, update, x, beta=a)
    if tall:
        x = x.T
    return x.to(torch.float32).numpy().astype(matrix.dtype, copy=False)


OPERATIONS = {"orthogonalize": orthogonalize}
