"""The element-wise functions a spec may call, and what each one means in SymPy.

One table serves the checker (names and arities) and the lowering (the SymPy meaning), so a
function added here is known to both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp


@dataclass(frozen=True)
class Function:
    min_args: int
    max_args: int | None  # None: any number
    to_sympy: Callable[..., sp.Basic]
    takes_condition: bool = False  # first argument is a condition (where)
    doc: str = ""
    reduction: bool = False        # over all elements of the tensor: one value per tensor
    takes_list: bool = False       # first argument is a list hyperparameter
    matrix: bool = False           # a whole-matrix operation; arguments after the first are host
    axis: bool = False             # a mean over rows or columns of a matrix (factored states)
    takes_optional: bool = False   # first argument is a tuple item that may be None
    channel: bool = False          # a reduction over each channel: one value per channel


class Select(sp.Function):
    """``Select(c, a, b)``: a where the condition c holds, else b, per element: a Piecewise
    inside a sum's argument.

    A Piecewise there is not safe: SymPy folds every Piecewise out of the functions around it
    whenever a condition containing one is built (``ExprCondPair`` calls ``piecewise_fold``),
    so ``sum(where(g > 0, g, 0)) > 0`` became ``sum(g) > 0 and g > 0`` per element — a sum of
    the wrong values, and a per-element condition in host code. SymPy does not fold a Select;
    printers and the verifier read it as the Piecewise it stands for, once no sum is around it.
    """

    nargs = 3
    is_real = True

    @classmethod
    def eval(cls, condition, then, otherwise):
        if condition == sp.true:
            return then
        if condition == sp.false or then == otherwise:
            return otherwise
        return None

    def _eval_derivative(self, symbol):
        condition, then, otherwise = self.args  # where the condition does not change
        return Select(condition, then.diff(symbol), otherwise.diff(symbol))

    def as_piecewise(self) -> sp.Piecewise:
        condition, then, otherwise = self.args
        return sp.Piecewise((then, condition), (otherwise, True), evaluate=False)

    def _latex(self, printer, exp=None):
        return _power(printer._print(self.as_piecewise()), exp)


def _selects(expr: sp.Basic) -> sp.Basic:
    """``expr`` with each Piecewise written as nested :class:`Select` calls."""
    if isinstance(expr, sp.Piecewise):
        result = sp.nan  # a Piecewise with no true branch is undefined past its last one
        for value, condition in reversed(expr.args):
            result = (_selects(value) if condition == sp.true
                      else Select(_selects(condition), _selects(value), result))
        return result
    if not expr.args or not expr.has(sp.Piecewise):
        return expr
    return expr.func(*map(_selects, expr.args))


def without_selects(expr: sp.Basic) -> sp.Basic:
    """``expr`` with each :class:`Select` that stands for a value back as a Piecewise (once no
    sum is around it). One inside a condition stays a Select: as a Piecewise there it would
    be folded out of the condition, which is SymPy's mis-simplification (see
    :func:`safe_condition`) and exponential in the number of choices; with numbers for its
    condition a Select is its branch, otherwise an opaque value to the prover."""
    if not expr.has(Select) or isinstance(expr, (sp.logic.boolalg.Boolean, sp.Rel)):
        return expr
    if isinstance(expr, Select):
        condition, then, otherwise = expr.args
        return sp.Piecewise((without_selects(then), condition),
                            (without_selects(otherwise), True))
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*((without_selects(v), c) for v, c in expr.args))
    return expr.func(*map(without_selects, expr.args))


class ReduceSum(sp.Function):
    """The sum of an element expression over every element of the tensor.

    Kept unevaluated through lowering; the planner gives each one a reduction pass. For the
    verifier's one-element tensors it is the expression itself. A Piecewise in its argument
    becomes a :class:`Select` (see there).
    """

    nargs = 1
    is_real = True
    # A value of the tensor, not a number even of a constant (SymPy's Min/Max refuse a
    # "number" they cannot compare: max(sum(0.5), 2))
    is_number = False

    @classmethod
    def eval(cls, x):
        if x.is_zero and cls.of_zeros_is_zero:  # a gradient set to 0 everywhere
            return sp.S.Zero
        if x.has(sp.Piecewise):
            return cls(_selects(x))
        return None

    #: How the spec writes it (reports and docstrings).
    spelling = "sum"
    #: Whether it is 0 over zeros whatever the size (amax over no elements is -inf).
    of_zeros_is_zero = True

    def _latex(self, printer, exp=None):
        name = self.spelling.replace("_", r"\_")
        return _power(rf"\operatorname{{{name}}}\left({printer._print(self.args[0])}\right)", exp)


class GroupSum(ReduceSum):
    """The sum of an element expression over every element of every tensor of the param group
    (Prodigy's and D-Adaptation's dot products, a global norm).

    A reduction like :class:`ReduceSum` (each tensor's reduction pass computes its own part);
    the runtime adds the parts over the group's tensors in order and hands every tensor the
    total. For the verifier's one tensor of one element it is the expression itself.
    """

    spelling = "group_sum"


class ChannelSum(ReduceSum):
    """The sum of an element expression over each channel of the tensor: over every dimension
    but the first (``x.sum(dim=(1, ..., ndim-1))`` in torch; the rows of
    ``x.view(x.size(0), -1)``, AdamP's "channel view"), one value per channel, broadcast back
    wherever it is read. A 0-d tensor is one channel of one element; a vector has one channel
    per element.

    A reduction in the planner's rounds (its own kernel writes one value per channel); for the
    verifier's one-element tensor it is the expression itself.
    """

    spelling = "channel_sum"


class ReduceMax(ReduceSum):
    """The largest value of an element expression over the tensor's elements (``amax``; NaN
    where any is NaN, as torch's ``amax``; ``-inf`` for an empty tensor). Computed in the
    reduction passes like a sum, with ``max`` for ``+`` (exact in any order: the bits do not
    depend on the thread count)."""

    spelling = "amax"
    of_zeros_is_zero = False


#: The number of elements of the tensor (for mean and rms).
NUMEL = sp.Symbol("_n", positive=True, integer=True)
#: The sizes of the parameter's first two dimensions (`rows`, `cols` in a spec; 1 where the
#: parameter has fewer dimensions).
ROWS = sp.Symbol("_rows", positive=True, integer=True)
COLS = sp.Symbol("_cols", positive=True, integer=True)
#: The number of elements of each channel: numel over the first dimension's size (1 for a
#: 0-d tensor; `channel_size` in a spec).
CHANNEL_SIZE = sp.Symbol("_k", positive=True, integer=True)
#: Per-tensor values the runtime computes from the shape, in the kernels' argument order.
SHAPE_VALUES = (NUMEL, ROWS, COLS, CHANNEL_SIZE)


#: Per-tensor host values the runtime supplies: whether the parameter has two or more
#: dimensions (``factored``), and the machine epsilon of its dtype (``epsilon``).
FACTORED = sp.Symbol("_factored")
EPSILON = sp.Symbol("_eps", positive=True)
#: The parameter's number of dimensions (``ndim``: 0 for a scalar).
NDIM = sp.Symbol("_ndim", integer=True, nonnegative=True)
#: In the order generated functions take them (after hypers, scalar states and input flags).
TENSOR_FLAGS = (FACTORED, EPSILON, NDIM)


def _power(latex: str, exp: str | None) -> str:
    """A function's LaTeX raised to ``exp`` (SymPy's printer passes it for ``f(x)^2``)."""
    return latex if exp is None else rf"{latex}^{{{exp}}}"


class AxisMean(sp.Function):
    """The mean of an expression over one of the last two axes of the parameter, kept
    (keepdims) as one value per row (``axis = -1``: ``row_mean``) or per column
    (``axis = -2``: ``col_mean``), broadcast back wherever it is read.

    Computed by the runtime's axis stage in NumPy on the parameter-shaped arrays; for the
    verifier's one-element tensors it is its argument.
    """

    nargs = 2
    is_real = True
    is_number = False  # as ReduceSum's

    @classmethod
    def eval(cls, x, axis):
        return sp.S.Zero if x.is_zero else None

    def _latex(self, printer, exp=None):
        name = r"\operatorname{row\_mean}" if self.args[1] == -1 else r"\operatorname{col\_mean}"
        return _power(rf"{name}\left({printer._print(self.args[0])}\right)", exp)


class Default(sp.Function):
    """``default(x, fallback)``: the hyperparameter (or tuple item) x, or fallback where x is
    None. Generated code receives None as NaN, and so does the verifier: ``Default(nan, f)``
    is f, ``Default(number, f)`` the number; of a symbol it stays itself (a claim over every
    value of x cannot tell which branch holds)."""

    nargs = 2
    is_real = True

    @classmethod
    def eval(cls, x, fallback):
        if x is sp.nan:
            return fallback
        if x.is_number and x.is_finite is not None:
            return x
        return None

    def _latex(self, printer, exp=None):
        x, fallback = (printer._print(a) for a in self.args)
        return _power(rf"\operatorname{{default}}\left({x}, {fallback}\right)", exp)


class CountLE(sp.Function):
    """How many items of a list hyperparameter are <= x (MultiStepLR's decay count). With a
    concrete list it is a sum of 0/1 Piecewise terms; generated host code loops over it."""

    nargs = 2

    @classmethod
    def eval(cls, items, x):
        if isinstance(items, sp.Tuple):
            return sp.Add(*(sp.Piecewise((1, sp.Le(v, x)), (0, True)) for v in items))
        return None


class Orthogonalize(sp.Function):
    """The orthogonalization of the parameter-shaped matrix of an element expression by the
    quintic Newton-Schulz iteration (Muon): X = G/max(norm(G), eps), then ``steps`` times
    A = X X^T, X = a X + (b A + c A A) X, on the transpose when rows > cols.

    Not element-wise: the planner computes its argument in one pass, the runtime iterates on the
    2-D matrix in the parameter's dtype, and the element pass reads the result.
    """

    nargs = 6
    is_real = True
    is_number = False  # as ReduceSum's


def safe_condition(condition: sp.Basic) -> sp.Basic:
    """A Piecewise condition with no Piecewise inside it.

    SymPy 1.14 mis-simplifies a condition that contains a Piecewise: building
    ``Piecewise((0, Piecewise((-g, m), (g, True))*q < 0), ...)`` yields the condition ``g*q > 0``,
    as if m always held (``rewrite(ITE)`` does the same). Folding the inner Piecewise out into
    ``(m & (-g*q < 0)) | (~m & (g*q < 0))`` keeps the meaning. Found by ``optgen verify``, whose
    counterexample the NumPy kernel did not reproduce.
    """
    if not condition.has(sp.Piecewise):
        return condition
    # Through a sum too (SymPy folds through every function): a condition on the sum of a
    # conditional value becomes one condition per branch, each on its own sum, which the
    # planner then computes in the same pass.
    folded = sp.piecewise_fold(condition)
    if not isinstance(folded, sp.Piecewise):
        return folded
    terms, earlier = [], []
    for value, branch in folded.args:
        terms.append(sp.And(value, branch, *(sp.Not(c) for c in earlier)))
        earlier.append(branch)
    return sp.Or(*terms)


def piecewise(*pairs) -> sp.Basic:
    """``sp.Piecewise`` with every condition made safe (see :func:`safe_condition`)."""
    return sp.Piecewise(*((value, safe_condition(sp.sympify(cond))) for value, cond in pairs))


def _clip(x, low, high):
    return sp.Min(sp.Max(x, low), high)


def _lerp(start, end, weight):
    """torch.lerp's two-sided formula: exact at weight 0 and 1, the same rounding as torch."""
    return piecewise((start + weight * (end - start), sp.Lt(weight, sp.Rational(1, 2))),
                     (end - (end - start) * (1 - weight), True))


def _where(condition, then, otherwise):
    return piecewise((then, condition), (otherwise, True))


FUNCTIONS: dict[str, Function] = {
    "sqrt": Function(1, 1, sp.sqrt, doc="square root"),
    "abs": Function(1, 1, sp.Abs, doc="absolute value"),
    "sign": Function(1, 1, sp.sign, doc="-1, 0 or 1"),
    "exp": Function(1, 1, sp.exp, doc="e to the power x"),
    "log": Function(1, 1, sp.log, doc="natural logarithm"),
    "min": Function(2, None, sp.Min, doc="smallest argument"),
    "max": Function(2, None, sp.Max, doc="largest argument"),
    "clip": Function(3, 3, _clip, doc="clip(x, low, high) = min(max(x, low), high)"),
    "lerp": Function(3, 3, _lerp, doc="lerp(a, b, w) = a + w*(b - a), computed as torch.lerp"),
    "cos": Function(1, 1, sp.cos, doc="cosine"),
    "floor": Function(1, 1, sp.floor, doc="largest integer not above x"),
    "sum": Function(1, 1, ReduceSum, doc="sum over the tensor's elements", reduction=True),
    "norm": Function(1, 1, lambda x: sp.sqrt(ReduceSum(x ** 2)),
                     doc="Euclidean norm over the tensor's elements", reduction=True),
    "mean": Function(1, 1, lambda x: ReduceSum(x) / NUMEL,
                     doc="mean over the tensor's elements", reduction=True),
    "rms": Function(1, 1, lambda x: sp.sqrt(ReduceSum(x ** 2) / NUMEL),
                    doc="root mean square over the tensor's elements", reduction=True),
    "group_sum": Function(1, 1, GroupSum, doc="sum over every element of every tensor of the "
                          "param group", reduction=True),
    "group_norm": Function(1, 1, lambda x: sp.sqrt(GroupSum(x ** 2)),
                           doc="Euclidean norm over every tensor of the param group",
                           reduction=True),
    "amax": Function(1, 1, ReduceMax, doc="largest value over the tensor's elements",
                     reduction=True),
    "channel_sum": Function(1, 1, ChannelSum, reduction=True, channel=True,
                            doc="sum over each channel (every dimension but the first): one "
                                "value per channel"),
    "channel_norm": Function(1, 1, lambda x: sp.sqrt(ChannelSum(x ** 2)), reduction=True,
                             channel=True, doc="Euclidean norm over each channel"),
    "channel_mean": Function(1, 1, lambda x: ChannelSum(x) / CHANNEL_SIZE, reduction=True,
                             channel=True, doc="mean over each channel (torch's "
                             "x.mean(dim=(1, ..., ndim-1), keepdim=True))"),
    "count_le": Function(2, 2, CountLE, takes_list=True,
                         doc="count_le(list, x): how many items of the list are <= x"),
    "orthogonalize": Function(6, 6, Orthogonalize, matrix=True,
                              doc="orthogonalize(x, a, b, c, steps, eps): Muon's Newton-Schulz "
                                  "iteration on the 2-D matrix of x"),
    "row_mean": Function(1, 1, lambda x: AxisMean(x, -1), axis=True,
                         doc="mean over each row (the last dimension): one value per row"),
    "col_mean": Function(1, 1, lambda x: AxisMean(x, -2), axis=True,
                         doc="mean over each column (the second-to-last dimension): one value "
                             "per column"),
    "default": Function(2, 2, Default, takes_optional=True,
                        doc="default(x, fallback): the tuple item x, or fallback where x is none"),
    "where": Function(3, 3, _where, takes_condition=True,
                      doc="where(c, a, b): a where c holds, else b"),
}
