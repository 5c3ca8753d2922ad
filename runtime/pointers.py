"""Reading arrays by address inside Numba kernels: the many-tensor kernels take one table of
addresses per (dtype, param group) instead of one array argument per tensor, so a step over
hundreds of tensors is one native call.

The addresses come from ``ndarray.ctypes.data`` or ``torch.Tensor.data_ptr()`` of contiguous
arrays that the caller keeps alive for the call.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic


@intrinsic
def address_as_pointer(typingctx, address, like):
    """``(T*) address`` for T the dtype of the array ``like`` (LLVM ``inttoptr``)."""
    pointer = types.CPointer(like.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(types.intp, like), codegen


@intrinsic
def fetch_add(typingctx, pointer, value):
    """``*pointer += value``, atomically, returning the value before (LLVM ``atomicrmw add``):
    the threads of a team take pieces of work from one counter."""
    signature = types.int64(types.CPointer(types.int64), types.int64)

    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("add", args[0], args[1], "monotonic")

    return signature, codegen


@numba.njit(cache=True, nogil=True)
def sum_blocks_in_order(partials, block_tensor, totals):
    """``totals[k] = sum of the partial sums of tensor k's blocks, in block order``: the same
    order as the one-tensor path, so sums do not depend on how tensors are grouped."""
    totals[:] = 0.0
    for b in range(partials.shape[0]):
        k = block_tensor[b]
        for j in range(partials.shape[1]):
            totals[k, j] += partials[b, j]


@numba.njit(cache=True, nogil=True)
def sum_rows_in_order(partials, totals):
    """``totals[j] = partials[0, j] + partials[1, j] + ...``, added in row order."""
    totals[:] = 0.0
    for b in range(partials.shape[0]):
        for j in range(partials.shape[1]):
            totals[j] += partials[b, j]


def work_list(sizes: np.ndarray, chunk: int) -> np.ndarray:
    """Rows ``(tensor, first element, length)`` splitting every tensor into chunks of at most
    ``chunk`` elements (empty tensors get none)."""
    rows = [(k, start, min(chunk, int(n) - start))
            for k, n in enumerate(sizes) for start in range(0, int(n), chunk)]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def balanced_pieces(rows: np.ndarray, pieces: int = 64) -> np.ndarray:
    """Boundaries ``b`` (length m + 1) splitting consecutive ``rows`` into m <= ``pieces``
    runs of about equal element counts. A parallel loop over runs is split evenly between
    threads by count, so equal runs keep every thread busy however unequal the tensors are."""
    if len(rows) == 0:
        return np.zeros(1, dtype=np.int64)
    ends = np.cumsum(rows[:, 2])
    targets = ends[-1] * np.arange(1, pieces) / pieces
    inner = np.searchsorted(ends, targets, side="left") + 1
    return np.unique(np.concatenate(([0], inner, [len(rows)]))).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def gradients_fit(addresses, grads, ends, storage_bytes, nbytes, written, starts, stops):
    """Whether new gradient addresses ``grads[k]`` may go into column 1 of an address table:
    each gradient's last byte ``ends[k]`` inside its storage (``storage_bytes[k]``), and its
    ``nbytes[k]`` either the very bytes of an array its own step writes (row k's columns
    ``written``: the param, the states) or disjoint from every array the optimizer's step
    writes (the sorted, disjoint spans ``[starts[i], stops[i])``)."""
    for k in range(grads.shape[0]):
        if ends[k] > storage_bytes[k]:
            return False
        g = grads[k]
        n = nbytes[k]
        alias = False
        for j in written:
            if addresses[k, j] == g:
                alias = True
        if alias:
            continue
        i = np.searchsorted(starts, g + n) - 1  # the last span starting before g's end
        if i >= 0 and stops[i] > g:
            return False
    return True
