"""Stepping many tensors of one dtype with one native call.

A :class:`TensorTable` holds, for a fixed list of tensors (sizes and shapes), the work list that
splits them into chunks, the per-tensor values the element pass reads (sums, sizes), and a table
of addresses: one row per tensor, one column per array of ``ARRAYS`` (p, g, inputs, states). The
front ends fill the addresses (parameters and states once; gradients when they change) and call
:meth:`TensorTable.run` with the host scalars the tensors share.

Sums (LAMB's norms) run over the same fixed ``REDUCE_BLOCK`` blocks as the one-tensor path and
are added per tensor in block order, so both paths give the same bits.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .kernels import shape_values
from .pointers import balanced_pieces, sum_blocks_in_order, work_list
from .team import TeamCall, team_function
from .threads import use_threads

#: Elements per chunk of the element pass: large enough that scheduling is free, small enough
#: that 2 threads share a few large tensors evenly.
CHUNK = 1 << 16


class TensorTable:
    """Tensors of one dtype that share their host scalars, stepped by ``step_many_cpu``."""

    def __init__(self, module: ModuleType, dtype: np.dtype, shapes: list[tuple[int, ...]],
                 combine=None):
        """``combine(values)``, where given, sums float64 per-tensor values over the shards
        of each tensor that other processes hold (an all-reduce): the sums and element counts
        of ``norm``/``mean``/``rms`` are then those of the whole tensors."""
        self.module = module
        self.dtype = np.dtype(dtype)
        self.like = np.empty(0, self.dtype)
        self.itemsize = self.dtype.itemsize
        sizes = np.array([int(np.prod(s, dtype=np.int64)) for s in shapes], dtype=np.int64)
        self.elements = int(sizes.sum())
        self._team_calls: dict[str, TeamCall] = {}  # the team functions' argument blocks
        self.work = work_list(sizes, CHUNK)
        self.pieces = balanced_pieces(self.work)
        self.addresses = np.zeros((len(shapes), len(module.ARRAYS)), dtype=np.int64)
        reductions = module.REDUCTIONS
        self.tensor = np.zeros((len(shapes), reductions + len(module.SHAPE_VALUES)), self.dtype)
        self.combine = combine
        counts = sizes.astype(np.float64)
        if combine is not None:
            counts = combine(counts)
        for k, shape in enumerate(shapes):
            values = shape_values(tuple(shape))
            values["_n"] = counts[k]
            for j, name in enumerate(module.SHAPE_VALUES):
                self.tensor[k, reductions + j] = values[name]
        if reductions:
            self.blocks = work_list(sizes, module.REDUCE_BLOCK)
            self.block_pieces = balanced_pieces(self.blocks)
            self.partials = np.zeros((len(self.blocks), reductions))
            self.totals = np.zeros((len(shapes), reductions))

    def host_array(self, host: tuple) -> np.ndarray:
        """Host scalars (numbers and flags) as the many-tensor kernels take them."""
        return np.array(host, dtype=self.dtype)

    def run_with(self, arrays: list[list[np.ndarray]], host: tuple) -> None:
        """Fill the addresses from ``arrays[k]`` (tensor k's flat arrays in ``ARRAYS`` order,
        contiguous, kept alive by the caller) and step."""
        for k, row in enumerate(arrays):
            self.addresses[k] = [a.ctypes.data for a in row]
        self.run(self.host_array(host))

    def run(self, host: np.ndarray, torch_threads: int | None = None, parallel=None) -> None:
        """One step of every tensor in the table; ``host`` from :meth:`host_array`;
        ``torch_threads``: torch's thread count, which the kernels follow (see threads.py);
        ``parallel``: torch's ``GOMP_parallel`` (runtime/team.py), to run a parallel call on
        torch's own threads instead of Numba's pool."""
        module = self.module
        count = use_threads(self.elements, torch_threads)
        teamed = parallel is not None and count > 1 and self.itemsize in (4, 8)
        if module.REDUCTIONS:
            if teamed:
                self._team("reduce", self.blocks, self.block_pieces, self.partials).run(
                    parallel, team_function(module, "reduce_many_cpu"), host, count)
            else:
                module.reduce_many_cpu(self.addresses, self.blocks, self.block_pieces,
                                       self.like, self.itemsize, host, self.partials)
            sum_blocks_in_order(self.partials, self.blocks[:, 0], self.totals)
            totals = self.combine(self.totals) if self.combine is not None else self.totals
            self.tensor[:, :module.REDUCTIONS] = totals
        if teamed:
            self._team("step", self.work, self.pieces, self.tensor).run(
                parallel, team_function(module, "step_many_cpu"), host, count)
        else:
            module.step_many_cpu(self.addresses, self.work, self.pieces, self.like,
                                 self.itemsize, host, self.tensor)

    def _team(self, kind: str, work, pieces, out) -> TeamCall:
        if kind not in self._team_calls:
            self._team_calls[kind] = TeamCall(self.module.TEAM_BLOCK, self.addresses, work,
                                              pieces, self.itemsize, out)
        return self._team_calls[kind]
