"""The factored stage (Adafactor's row and column means) as one Numba CPU loop nest.

An :class:`~optgen.compiler.plan.AxisStage` holds, per matrix (the last two dimensions of a
parameter, R rows by C columns), the new per-row and per-column states and the per-row,
per-column and per-matrix values the element passes read. Its means are of three kinds:

* ``row_mean(x)`` / ``col_mean(x)`` of an element-wise ``x``: one sweep over the matrix's
  elements, ``x`` computed once per element and added both to its row's sum (a float64 row of
  terms, added in eight interleaved lanes) and to its column's (a float64 accumulator per
  column, rows in order);
* the mean over rows of a per-row value (``col_mean(row_var)``), or over columns of a per-column
  one: a loop over the matrix's rows (columns) after the sweep, in order, in float64;
* the mean of a value that does not vary along the axis: the value itself (as NumPy's mean over
  an axis of size one is).

Every mean is rounded to the parameter's dtype, as NumPy's is. The order of every sum depends
only on the shape (the tiling below), never on the thread count: the same bits on any machine.

Matrices of at most ``AXIS_TILE`` elements are handled whole, several to a parallel tile;
a larger matrix is split into at most ``AXIS_SPLIT`` blocks of rows (runtime/tiling.py), swept in parallel,
whose column sums are then added in block order. A stage this nest cannot express (a mean of
an element-wise value that itself reads a mean, a full-size value) returns ``None``: the
runtime then runs the NumPy stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .functions import AxisMean

_ROWS, _COLS = frozenset("R"), frozenset("C")
_ALL = frozenset("RC")


@dataclass(frozen=True)
class Mean:
    """One mean of the stage: ``kind`` is "row" (of an element-wise value, over columns),
    "col" (over rows), "rows" (of a per-row value: one per matrix) or "cols"."""

    symbol: sp.Symbol
    kind: str
    arg: sp.Expr


@dataclass(frozen=True)
class AxisNest:
    """What the template needs, every expression still SymPy (the renderer prints them)."""

    means: tuple[Mean, ...]                 # in dependency order
    row_values: tuple[tuple[str, sp.Expr], ...]   # output or state name -> per-row value
    col_values: tuple[tuple[str, sp.Expr], ...]
    matrix_values: tuple[tuple[str, sp.Expr], ...]
    aliases: tuple[int, ...]                # per scratch array: the axis state it equals, or -1


def axis_nest(stage, shape_of: dict[sp.Symbol, frozenset],
              axis_of: dict[str, str]) -> AxisNest | None:
    """The nest for ``stage``; ``shape_of`` gives each loaded symbol's axes ("R", "C" or both),
    ``axis_of`` each factored state's ("row" or "col"), in ``AXIS_STATES`` order."""
    expanded: dict[sp.Symbol, sp.Expr] = {}
    for symbol, value in stage.temps:
        expanded[symbol] = value.xreplace(expanded)
    stores = [(name, value.xreplace(expanded)) for name, value in stage.stores]
    values = [value.xreplace(expanded) for value in stage.values]

    shapes = dict(shape_of)
    means: dict[sp.Basic, Mean] = {}

    def shape(expr) -> frozenset:
        if expr in shapes:
            return shapes[expr]
        if not expr.args:
            return frozenset()
        return frozenset().union(*(shape(a) for a in expr.args))

    def replace_means(expr):
        if isinstance(expr, AxisMean):
            arg = replace_means(expr.args[0])
            axis = "C" if int(expr.args[1]) == -1 else "R"
            arg_shape = shape(arg)
            if axis not in arg_shape:
                return arg  # the mean along an axis the value does not vary on
            if arg_shape == _ALL:
                if any(m.symbol in arg.free_symbols for m in means.values()):
                    raise _Unsupported  # a second sweep over the elements
                kind = "row" if axis == "C" else "col"
            else:
                kind = "rows" if axis == "R" else "cols"
            key = (kind, arg)
            if key not in means:
                symbol = sp.Symbol(f"_mean{len(means)}", real=True)
                means[key] = Mean(symbol, kind, arg)
                shapes[symbol] = arg_shape - {axis}
            return means[key].symbol
        if not expr.args:
            return expr
        return expr.func(*(replace_means(a) for a in expr.args))

    try:
        stores = [(name, replace_means(v)) for name, v in stores]
        values = [replace_means(v) for v in values]
    except _Unsupported:
        return None
    row_values, col_values, matrix_values = [], [], []
    by_class = {"row": (_ROWS, row_values), "col": (_COLS, col_values),
                "matrix": (frozenset(), matrix_values)}
    aliases = []
    for k, (value, kind) in enumerate(zip(values, stage.classes)):
        same = [j for j, (_, stored) in enumerate(stores) if stored == value]
        aliases.append(same[0] if same else -1)
        if same:
            continue
        if kind not in by_class or not shape(value) <= by_class[kind][0]:
            return None  # a full-size value, or one the passes read in another shape
        # in the passes' class, even where it varies along fewer axes (a per-row value that
        # is one number per matrix is still written once per row)
        by_class[kind][1].append((f"_ax{k}", value))
    for name, value in stores:
        (row_values if axis_of[name] == "row" else col_values).append((name, value))
    return AxisNest(tuple(means.values()), tuple(row_values), tuple(col_values),
                    tuple(matrix_values), tuple(aliases))


class _Unsupported(Exception):
    pass
