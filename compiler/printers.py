"""SymPy printers, one per kind of generated code. No expression is ever printed by hand.

Every symbol is printed through :func:`~optgen.compiler.names.code_name`: a spec's names get
their own namespace in code (``lr`` is ``lr_``), so none can meet a name of the code's own.

* :class:`ScalarPrinter` — code over scalars: the host function (hyperparameters, ``t``) and the
  body of Numba's element loop. Conditions are Python's ``a if c else b`` (only the chosen branch
  runs), comparisons and ``and``/``or``/``not`` are infix, and functions are NumPy's ufuncs, which
  Numba compiles for scalars and which keep float32 as float32 (``math.sqrt`` would too, but
  ``math.copysign`` would not).
* :class:`NumbaCPUPrinter` — the Numba CPU kernel's printer; today exactly the scalar printer.
* :class:`NumpyArrayPrinter` — whole-array NumPy code for the reference backend: element-wise
  conditions become ``numpy.where``; host conditions stay Python conditionals.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import precedence

from .names import code_name

_SETTINGS = {"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": False,
             "error_on_reserved": True}


class _BasePrinter(NumPyPrinter):
    def __init__(self, settings=None, names=None):
        super().__init__({**_SETTINGS, **(settings or {})})
        self.names = names or {}  # the plan's positional symbols -> their spelling in code

    def _print_Symbol(self, expr):
        return self.names.get(expr.name) or code_name(expr.name)

    def _print_Pow(self, expr, rational=False):
        # NumPyPrinter turns x**-1 into x**(-1.0); a division is both faster and exact.
        return self._hprint_Pow(expr, rational=rational, sqrt=self._module + ".sqrt")

    def _print_Max(self, expr):
        return self._fold("maximum", expr.args)

    def _print_Min(self, expr):
        return self._fold("minimum", expr.args)

    def _fold(self, ufunc: str, args) -> str:
        """max(a, b, c) -> numpy.maximum(numpy.maximum(a, b), c): NaN propagates like torch."""
        name = self._module_format(f"{self._module}.{ufunc}")
        text = self._print(args[0])
        for arg in args[1:]:
            text = f"{name}({text}, {self._print(arg)})"
        return text

    def _print_Default(self, expr):
        """None reaches generated code as NaN."""
        value, fallback = (self._print(a) for a in expr.args)
        isnan = self._module_format(self._module + ".isnan")
        return f"(({fallback}) if {isnan}({value}) else ({value}))"

    def _print_sign(self, expr):
        return f"{self._module_format(self._module + '.sign')}({self._print(expr.args[0])})"

    def _print_Select(self, expr):
        return self._print(expr.as_piecewise())

    def _ternary(self, expr: sp.Piecewise) -> str:
        """Nested ``(a if c else b)``; a Piecewise always ends in a True branch here."""
        *pieces, (last, cond) = expr.args
        if cond != sp.true:
            raise ValueError(f"Piecewise without a default branch: {expr}")
        text = self._print(last)
        for value, condition in reversed(pieces):
            text = f"(({self._print(value)}) if {self._print(condition)} else ({text}))"
        return text


class ScalarPrinter(_BasePrinter):
    """Scalar code: host functions and Numba element loops."""

    def _print_Pi(self, expr):
        # NumPy's float64, not Python's float: pi^1000 is inf, not an OverflowError
        return f"{self._module_format('numpy.float64')}({self._module_format('numpy.pi')})"

    def _print_Exp1(self, expr):
        return f"{self._module_format('numpy.float64')}({self._module_format('numpy.e')})"

    def _print_Piecewise(self, expr):
        return self._ternary(expr)

    def _print_Relational(self, expr):
        prec = precedence(expr)
        return (f"({self.parenthesize(expr.lhs, prec)} {expr.rel_op} "
                f"{self.parenthesize(expr.rhs, prec)})")

    def _print_And(self, expr):
        return "(" + " and ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " or ".join(self._print(a) for a in expr.args) + ")"

    def _print_Not(self, expr):
        return f"(not {self._print(expr.args[0])})"

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"

    def _print_CountLE(self, expr):
        items, x = expr.args
        return f"sum(1 for _v in {self._print(items)} if _v <= {self._print(x)})"


class _ElementLoopPrinter(ScalarPrinter):
    """Element loops of a compiled kernel: a reciprocal is printed as a function, not ``1/x``,
    whose integer 1 would make Numba compute in float64 for a float32 parameter."""

    _RECIPROCAL = "numpy.reciprocal"

    def _print_Pow(self, expr, rational=False):
        exponent = expr.exp
        if exponent.is_Rational and exponent.is_negative and exponent.q in (1, 2):
            positive = expr.base if exponent == -1 else sp.Pow(expr.base, -exponent,
                                                                evaluate=False)
            return f"{self._RECIPROCAL}({self._print(positive)})"
        return super()._print_Pow(expr, rational=rational)


class NumbaCPUPrinter(_ElementLoopPrinter):
    """The Numba CPU element loop."""


class NumpyArrayPrinter(_BasePrinter):
    """Whole-array NumPy code. ``host_symbols`` are scalars: conditions on them stay Python."""

    def _print_And(self, expr):
        return self._fold("logical_and", expr.args)

    def _print_Or(self, expr):
        return self._fold("logical_or", expr.args)

    def __init__(self, host_symbols=frozenset(), settings=None, names=None):
        super().__init__(settings, names)
        self.host_symbols = frozenset(host_symbols)

    def _print_Piecewise(self, expr):
        if all(cond.free_symbols <= self.host_symbols for _, cond in expr.args):
            return self._ternary(expr)
        *pieces, (last, cond) = expr.args
        if cond != sp.true:
            raise ValueError(f"Piecewise without a default branch: {expr}")
        where = self._module_format(self._module + ".where")
        text = self._print(last)
        for value, condition in reversed(pieces):
            text = f"{where}({self._print(condition)}, {self._print(value)}, {text})"
        return text

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"

    def _print_AxisMean(self, expr):
        mean = self._module_format(self._module + ".mean")
        return f"{mean}({self._print(expr.args[0])}, axis={int(expr.args[1])}, keepdims=True)"


class NumbaCUDAPrinter(_ElementLoopPrinter):
    """The Numba CUDA element loop: NaN-propagating ``maximum``/``minimum``, ``sign``,
    ``reciprocal`` and ``sqrt`` (float32 stays float32; NaN below 0, also in the simulator,
    whose Python ``math.sqrt`` raises) as device functions with NumPy's meaning."""

    _RECIPROCAL = "_reciprocal"

    def _print_Pow(self, expr, rational=False):
        exponent = expr.exp
        if exponent.is_Rational and exponent.is_negative and exponent.q in (1, 2):
            return super()._print_Pow(expr, rational=rational)
        return self._hprint_Pow(expr, rational=rational, sqrt="_sqrt")

    def _fold(self, ufunc: str, args) -> str:
        name = {"maximum": "_maximum", "minimum": "_minimum"}[ufunc]
        text = self._print(args[0])
        for arg in args[1:]:
            text = f"{name}({text}, {self._print(arg)})"
        return text

    def _print_sign(self, expr):
        return f"_sign({self._print(expr.args[0])})"

    def _print_Function(self, expr):
        raise ValueError(f"{expr.func.__name__}() has no CUDA element code yet")
