"""Hypothesis strategies for random optgen specs, drawn from the language (README, "The
language"; compiler/spec.lark).

:func:`specs` draws a small spec as text: a header (an optimizer, now and then a schedule, a
wrapper or one that extends a catalogue spec), hyperparameters of every type (floats with
domains, ints, bools, tuples named ``as (a, b)`` with ``none`` items, choices, lists), states
(plain, ``if COND``, ``per-row``/``per-col if factored``, scalars), an input now and then,
``require`` lines, and an update of temporaries and assignments over every operator and
function of the language: ``+ - * / % ^ **``, comparisons, ``and or not``, ``c ? a : b``,
``sqrt abs sign exp log cos floor min max clip lerp where default count_le``, the per-tensor
reductions ``norm sum mean rms``, ``row_mean``/``col_mean``, ``rows cols factored epsilon pi``,
conditional assignments ``x = e if c`` and ``orthogonalize``.

Most drawn specs are meant to be well formed: names are defined before they are read, only
values that exist are read, reductions read what a reduction pass can, and so on. A fraction
carry one plausible mistake (``Spec.mistake`` names it); those must be refused with a located
error, never a traceback. A spec meant to be well formed may still be refused (the generator
follows the language's rules only roughly); what matters is that whatever ``optgen check``
accepts builds and steps.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from hypothesis import strategies as st

#: Literals, as written (every form the grammar takes: integers, decimals, exponents, '.5').
LITERALS = ["0", "1", "2", "3", "0.5", "0.9", "0.999", "1e-8", "1e-3", "10", "1.5", ".25",
            "2.5e-2", "100", "4"]
#: Element-wise functions and how many arguments each takes.
ELEMENT_FUNCTIONS = {"sqrt": 1, "abs": 1, "sign": 1, "exp": 1, "log": 1, "cos": 1, "floor": 1,
                     "min": 2, "max": 2, "clip": 3, "lerp": 3}
REDUCTIONS = ["norm", "sum", "mean", "rms"]
#: Catalogue specs another may extend (one level only: none of these extends another).
BASES = ["sgd", "adam", "lion", "rmsprop", "adafactor", "lamb", "sophia", "nadam"]


@dataclass(frozen=True)
class Spec:
    """A drawn spec."""

    text: str
    kind: str                    # "optimizer", "schedule" or "wrapper" (wraps inner)
    inputs: tuple[str, ...] = ()  # extra arrays step() takes
    mistake: str | None = None   # the mistake put in on purpose, or None

    def __str__(self) -> str:
        return self.text


@dataclass
class _Names:
    """What the spec has declared so far, by what an expression may do with each name."""

    host_nums: list[str] = field(default_factory=list)      # hypers, t, pi, epsilon, scalars
    host_bools: list[str] = field(default_factory=list)     # bool hypers, factored, has_x
    hyper_nums: list[str] = field(default_factory=list)     # hyperparameters only
    hyper_bools: list[str] = field(default_factory=list)
    tensor_nums: list[str] = field(default_factory=list)    # rows, cols, per-tensor temps
    element_nums: list[str] = field(default_factory=list)   # p, g, inputs, states, temps
    element_bools: list[str] = field(default_factory=list)
    matrix_nums: list[str] = field(default_factory=list)    # temps holding orthogonalize()
    axis_nums: list[str] = field(default_factory=list)      # per-row/per-col states
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    optional: list[str] = field(default_factory=list)       # tuple items defaulting to none
    lists: list[str] = field(default_factory=list)          # list hypers (count_le)
    step_counts: list[str] = field(default_factory=list)    # int hypers within [0, 100]
    row_states: list[str] = field(default_factory=list)
    col_states: list[str] = field(default_factory=list)
    scalars: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)         # per-element states
    inputs: list[str] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)          # every temporary, any kind
    used: set[str] = field(default_factory=set)             # every name declared


#: Names a spec may declare that mean something to the code generated from it (Python's,
#: NumPy's, Numba's, SymPy's, the generated code's own), look like its names (``lr_``), or are
#: the front ends' own arguments and state keys (``params``, ``step``).
TRICKY_NAMES = ["numpy", "math", "cuda", "numba", "sum", "abs", "max", "range", "len", "lr_",
                "t_", "p_", "g_", "h0_", "e0", "r0", "self", "kernels", "sqrt", "where",
                "norm", "Inf", "nan", "I", "E", "S", "N", "O", "Q", "oo", "zoo", "pi_",
                "lambda_", "True_", "None_", "broken", "address_as_pointer", "x_", "v0", "c0",
                "params", "backend", "inner", "module", "fused", "step", "state_dict", "hypers",
                "name", "set", "prepare", "defaults", "param_groups"]


@st.composite
def _fresh(draw, names: _Names, default: str) -> str:
    """A name not declared yet: ``default``, or now and then a tricky one."""
    name = default
    if draw(st.integers(0, 4)) == 0:
        name = draw(st.sampled_from(TRICKY_NAMES))
    if name in names.used:
        name = default
    while name in names.used:
        name += "x"
    names.used.add(name)
    return name


@dataclass(frozen=True)
class _Scope:
    """What one expression may read and call."""

    nums: tuple[str, ...]
    bools: tuple[str, ...]
    choices: dict = field(default_factory=dict)
    optional: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()
    reductions: "_Scope | None" = None  # the scope of a reduction's argument, if allowed
    axis: "_Scope | None" = None        # the scope of row_mean()'s argument, if allowed
    element: bool = False               # where() and element conditions


def _host_scope(names: _Names, hyper_only: bool = False) -> _Scope:
    """Host values (``hyper_only``: hyperparameters and pi alone)."""
    nums = names.hyper_nums + ["pi"] if hyper_only else names.host_nums
    bools = names.hyper_bools if hyper_only else names.host_bools
    return _Scope(tuple(nums), tuple(bools), names.choices, tuple(names.optional),
                  tuple(names.lists))


def _pure_scope(names: _Names) -> _Scope:
    """Inside a reduction or a row mean: element values not computed from per-tensor ones."""
    return _Scope(tuple(names.host_nums + names.element_nums * 3),
                  tuple(names.host_bools + names.element_bools), names.choices,
                  tuple(names.optional), element=True)


def _element_scope(names: _Names, reductions=True, axis=False, matrix=True) -> _Scope:
    pure = _pure_scope(names)
    # element values three times as often: an update is mostly about them
    nums = names.host_nums + names.tensor_nums + names.element_nums * 3
    if matrix:
        nums = nums + names.matrix_nums
    if axis:
        nums = nums + names.axis_nums
    return _Scope(tuple(nums), tuple(names.host_bools + names.element_bools), names.choices,
                  tuple(names.optional), tuple(names.lists),
                  reductions=pure if reductions else None,
                  axis=pure if axis and (names.row_states or names.col_states) else None,
                  element=True)


# --- expressions ---------------------------------------------------------------------------

def _paren(text: str) -> str:
    return f"({text})"


@st.composite
def number_expr(draw, scope: _Scope, depth: int = 2) -> str:
    """A number-valued expression over ``scope``."""
    leaves = ["literal"] + (["name"] * 3 if scope.nums else [])
    if depth <= 0:
        kind = draw(st.sampled_from(leaves))
    else:
        kinds = leaves + ["binary"] * 4 + ["neg", "call", "call", "ternary"]
        if scope.element:
            kinds.append("where")
        if scope.reductions is not None:
            kinds += ["reduction", "reduction"]
        if scope.axis is not None:
            kinds += ["axis", "axis"]
        if scope.optional:
            kinds.append("default")
        if scope.lists:
            kinds.append("count_le")
        kind = draw(st.sampled_from(kinds))
    sub = depth - 1
    if kind == "literal":
        return draw(st.sampled_from(LITERALS))
    if kind == "name":
        return draw(st.sampled_from(scope.nums))
    if kind == "binary":
        op = draw(st.sampled_from(["+", "-", "*", "/", "%", "^", "**", "+", "*", "-"]))
        left = draw(number_expr(scope, sub))
        right = draw(number_expr(scope, sub))
        return _paren(f"{left} {op} {right}")
    if kind == "neg":
        return _paren("-" + draw(number_expr(scope, sub)))
    if kind == "call":
        func = draw(st.sampled_from(sorted(ELEMENT_FUNCTIONS)))
        count = ELEMENT_FUNCTIONS[func]
        if func in ("min", "max"):
            count = draw(st.integers(2, 3))
        args = [draw(number_expr(scope, sub)) for _ in range(count)]
        return f"{func}({', '.join(args)})"
    if kind == "where":
        cond = draw(bool_expr(scope, sub))
        return (f"where({cond}, {draw(number_expr(scope, sub))}, "
                f"{draw(number_expr(scope, sub))})")
    if kind == "ternary":
        cond = draw(bool_expr(scope, sub))
        return _paren(f"{cond} ? {draw(number_expr(scope, sub))} : {draw(number_expr(scope, sub))}")
    if kind == "reduction":
        func = draw(st.sampled_from(REDUCTIONS))
        return f"{func}({draw(number_expr(scope.reductions, sub))})"
    if kind == "axis":
        func = draw(st.sampled_from(["row_mean", "col_mean"]))
        return f"{func}({draw(number_expr(scope.axis, sub))})"
    if kind == "default":
        return f"default({draw(st.sampled_from(scope.optional))}, {draw(number_expr(scope, sub))})"
    if kind == "count_le":
        return f"count_le({draw(st.sampled_from(scope.lists))}, {draw(number_expr(scope, sub))})"
    raise AssertionError(kind)


@st.composite
def bool_expr(draw, scope: _Scope, depth: int = 2) -> str:
    """A condition over ``scope``."""
    leaves = ["literal", "compare", "compare"] + (["name"] * 2 if scope.bools else [])
    if scope.choices:
        leaves.append("choice")
    kinds = leaves if depth <= 0 else leaves + ["and", "or", "not", "ternary"]
    kind = draw(st.sampled_from(kinds))
    sub = depth - 1
    if kind == "literal":
        return draw(st.sampled_from(["true", "false"]))
    if kind == "name":
        return draw(st.sampled_from(scope.bools))
    if kind == "choice":
        name = draw(st.sampled_from(sorted(scope.choices)))
        return _paren(f'{name} {draw(st.sampled_from(["==", "!="]))} '
                      f'"{draw(st.sampled_from(scope.choices[name]))}"')
    if kind == "compare":
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return _paren(f"{draw(number_expr(scope, max(sub, 0)))} {op} "
                      f"{draw(number_expr(scope, max(sub, 0)))}")
    if kind in ("and", "or"):
        return _paren(f"{draw(bool_expr(scope, sub))} {kind} {draw(bool_expr(scope, sub))}")
    if kind == "not":
        return _paren(f"not {draw(bool_expr(scope, sub))}")
    if kind == "ternary":
        return _paren(f"{draw(bool_expr(scope, sub))} ? {draw(bool_expr(scope, sub))} : "
                      f"{draw(bool_expr(scope, sub))}")
    raise AssertionError(kind)


# --- declarations --------------------------------------------------------------------------

#: Domains, and defaults inside each.
FLOAT_DOMAINS = {
    None: ["0.1", "-1", "0", "2.5", "1e-8"],
    "(-inf, inf)": ["-0.5", "0", "3", "1e-3"],
    "[0, inf)": ["0", "0.01", "1", "1e3"],
    "(0, inf)": ["1e-8", "0.1", "1", "2"],
    "[0, 1)": ["0", "0.9", "0.999", "0.5"],
    "[0, 1]": ["0", "1", "0.5"],
    "[-1, 1]": ["-1", "0.25", "1"],
    "(-inf, 0]": ["-0.8", "0"],
}
INT_DOMAINS = {None: ["0", "1", "5"], "[0, 100]": ["0", "3", "5"], "[1, inf)": ["1", "2", "30"],
               "[1, 10]": ["1", "4", "10"], "[0, inf)": ["0", "7"]}


@st.composite
def _hyper(draw, name: str, names: _Names, schedule: bool) -> str:
    kind = draw(st.sampled_from(["float"] * 5 + ["int"] * 2 + ["bool"] * 2 + ["tuple", "choice"]
                                + (["list"] if schedule else [])))
    doc = draw(st.sampled_from(["", "", f' "the {name}"']))
    if kind == "float":
        domain = draw(st.sampled_from(list(FLOAT_DOMAINS)))
        default = draw(st.sampled_from(FLOAT_DOMAINS[domain]))
        typed = draw(st.sampled_from(["", "", ": float"]))
        names.host_nums.append(name)
        names.hyper_nums.append(name)
        return f"hyper {name}{typed} = {default}" + (f" in {domain}" if domain else "") + doc
    if kind == "int":
        domain = draw(st.sampled_from(list(INT_DOMAINS)))
        default = draw(st.sampled_from(INT_DOMAINS[domain]))
        names.host_nums.append(name)
        names.hyper_nums.append(name)
        if domain in ("[0, 100]", "[1, 10]"):
            names.step_counts.append(name)
        return f"hyper {name}: int = {default}" + (f" in {domain}" if domain else "") + doc
    if kind == "bool":
        names.host_bools.append(name)
        names.hyper_bools.append(name)
        typed = draw(st.sampled_from(["", ": bool"]))
        return f"hyper {name}{typed} = {draw(st.sampled_from(['true', 'false']))}" + doc
    if kind == "tuple":
        size = draw(st.integers(2, 3))
        items = [draw(_fresh(names, f"{name}{k}")) for k in range(size)]
        domain = draw(st.sampled_from([None, "[0, 1)", "(-inf, inf)", "[0, inf)"]))
        pool = FLOAT_DOMAINS[domain]
        values = [draw(st.sampled_from(pool + ["none"])) for _ in items]
        for item, value in zip(items, values):
            if value == "none":
                names.optional.append(item)
            else:
                names.host_nums.append(item)
                names.hyper_nums.append(item)
        return (f"hyper {name} = ({', '.join(values)}) as ({', '.join(items)})"
                + (f" in {domain}" if domain else "") + doc)
    if kind == "choice":
        options = draw(st.lists(st.sampled_from(["a", "b", "original", "fast", "x y"]),
                                min_size=1, max_size=3, unique=True))
        names.choices[name] = tuple(options)
        quoted = ", ".join(f'"{o}"' for o in options)
        return f'hyper {name} = "{draw(st.sampled_from(options))}" in {{{quoted}}}' + doc
    if kind == "list":
        values = draw(st.lists(st.sampled_from(["1", "3", "10", "30", "80"]), max_size=3))
        names.lists.append(name)
        return f"hyper {name} = [{', '.join(values)}]" + doc
    raise AssertionError(kind)


@st.composite
def _state(draw, name: str, names: _Names) -> str:
    kind = draw(st.sampled_from(["plain"] * 4 + ["if"] * 2 + ["row", "col", "scalar"]))
    hyper = _host_scope(names, hyper_only=True)
    if kind == "plain":
        init = draw(st.one_of(st.just("0"), st.just("p"), number_expr(hyper, 1),
                              number_expr(dataclasses.replace(hyper, nums=hyper.nums + ("p",)),
                                          1)))
        names.states.append(name)
        names.element_nums.append(name)
        return f"state {name} = {init}"
    if kind == "if":
        condition = draw(st.one_of(
            st.sampled_from(["factored", "not factored"]),
            bool_expr(dataclasses.replace(hyper, bools=hyper.bools + ("factored",)), 1)))
        names.states.append(name)
        names.element_nums.append(name)
        return f"state {name} = {draw(st.sampled_from(['0', '1', 'p']))} if {condition}"
    if kind in ("row", "col"):
        (names.row_states if kind == "row" else names.col_states).append(name)
        names.axis_nums.append(name)
        return f"state {name} = {draw(st.sampled_from(['0', '1']))} per-{kind} if factored"
    names.scalars.append(name)
    names.host_nums.append(name)
    return f"scalar {name} = {draw(number_expr(hyper, 1))}"


# --- the update section ----------------------------------------------------------------------

@st.composite
def _statement(draw, names: _Names, schedule: bool, kind: str | None = None) -> list[str]:
    """One or two update lines (of ``kind``, or any), recording what they define."""
    if schedule:
        scope = _host_scope(names)
        kind = draw(st.sampled_from(["num", "num", "bool"]))
        name = draw(_fresh(names, f"u{len(names.temps)}"))
        names.temps.append(name)
        if kind == "bool":
            names.host_bools.append(name)
            return [f"{name} = {draw(bool_expr(scope))}"]
        names.host_nums.append(name)
        return [f"{name} = {draw(number_expr(scope))}"]
    kinds = ["temp"] * 4 + ["flag", "host_temp", "reduced", "p", "g"]
    if names.states:
        kinds += ["state"] * 3
    if names.scalars:
        kinds.append("scalar")
    if names.row_states or names.col_states:
        kinds += ["axis", "axis_read"]
    if names.inputs:
        kinds.append("input")
    kinds.append("matrix")
    kind = kind or draw(st.sampled_from(kinds))
    element = _element_scope(names)

    def guard(scope: _Scope) -> str:
        if draw(st.integers(0, 3)) == 0:
            return f" if {draw(bool_expr(scope, 1))}"
        return ""

    if kind in ("temp", "host_temp", "reduced", "flag", "matrix"):
        name = draw(_fresh(names, f"u{len(names.temps)}"))
        names.temps.append(name)
        if kind == "flag":
            names.element_bools.append(name)
            return [f"{name} = {draw(bool_expr(element))}"]
        if kind == "host_temp":
            names.host_nums.append(name)
            return [f"{name} = {draw(number_expr(_host_scope(names)))}"]
        if kind == "reduced":
            names.tensor_nums.append(name)
            func = draw(st.sampled_from(REDUCTIONS))
            return [f"{name} = {func}({draw(number_expr(_pure_scope(names)))})"]
        if kind == "matrix":
            names.matrix_nums.append(name)
            host = _host_scope(names)
            steps = draw(st.sampled_from(["0", "1", "5"] + names.step_counts))
            coefficients = [draw(number_expr(host, 0)) for _ in range(3)]
            eps = draw(st.sampled_from(["1e-7", "0"] + names.hyper_nums))
            return [f"{name} = orthogonalize({draw(number_expr(_pure_scope(names), 1))}, "
                    f"{', '.join(coefficients)}, {steps}, {eps})"]
        line = f"{name} = {draw(number_expr(element))}"
        # a temporary computed from per-tensor values is itself per tensor
        if re.search(r"\b(" + "|".join(REDUCTIONS + names.tensor_nums + names.matrix_nums
                                        + ["rows", "cols"]) + r")\b", line.split("=", 1)[1]):
            names.tensor_nums.append(name)
        else:
            names.element_nums.append(name)
        lines = [line]
        if draw(st.booleans()):  # assigned again, under a condition
            lines.append(f"{name} = {draw(number_expr(_element_scope(names)))}"
                         f" if {draw(bool_expr(element, 1))}")
        return lines
    if kind == "state":
        name = draw(st.sampled_from(names.states))
        return [f"{name} = {draw(number_expr(element))}{guard(element)}"]
    if kind == "scalar":
        name = draw(st.sampled_from(names.scalars))
        host = _host_scope(names)
        return [f"{name} = {draw(number_expr(host))}{guard(host)}"]
    if kind == "p":
        return [f"p = p - {draw(number_expr(element))}{guard(element)}"]
    if kind == "g":
        flag = draw(st.sampled_from(names.host_bools or ["true"]))
        return [f"g = {draw(st.sampled_from(['-g', 'g + p', 'g * 2']))} if {flag}"]
    if kind == "input":
        name = draw(st.sampled_from(names.inputs))
        return [f"{draw(st.sampled_from(names.states))} = {name} if has_{name}"
                if names.states and draw(st.booleans()) else
                f"p = p - {draw(number_expr(element, 1))} * {name} if has_{name}"]
    if kind == "axis":
        axis = draw(st.sampled_from((["row"] if names.row_states else [])
                                    + (["col"] if names.col_states else [])))
        name = draw(st.sampled_from(names.row_states if axis == "row" else names.col_states))
        mean = f"{axis}_mean({draw(number_expr(_pure_scope(names), 1))})"
        host = _host_scope(names)
        value = draw(st.sampled_from([
            f"lerp({name}, {mean}, {draw(number_expr(host, 0))})",
            f"{name} * {draw(number_expr(host, 0))} + {mean}", mean]))
        return [f"{name} = {value}{draw(st.sampled_from([' if factored'] * 4 + ['']))}"]
    if kind == "axis_read":
        name = draw(_fresh(names, f"u{len(names.temps)}"))
        names.temps.append(name)
        names.element_nums.append(name)
        read = _element_scope(names, reductions=False, axis=True)
        value = draw(number_expr(read))
        if draw(st.integers(0, 4)):
            value = f"factored ? {value} : {draw(number_expr(element, 1))}"
        return [f"{name} = {value}"]
    raise AssertionError(kind)


# --- whole specs ------------------------------------------------------------------------------

@st.composite
def well_formed(draw) -> Spec:
    """A spec meant to be valid (the generator follows the rules roughly)."""
    kind = draw(st.sampled_from(["optimizer"] * 12 + ["schedule"] * 2 + ["wrapper", "extends"]))
    schedule = kind == "schedule"
    names = _Names(host_nums=["t", "pi"] + ([] if schedule else ["epsilon"]),
                   host_bools=[] if schedule else ["factored"])
    if not schedule:
        names.element_nums += ["p", "g"]
        names.tensor_nums += ["rows", "cols"]
    lines = [{"optimizer": "optimizer fz", "schedule": "schedule fz",
              "wrapper": "optimizer fz wraps inner",
              "extends": f"optimizer fz extends {draw(st.sampled_from(BASES))}"}[kind]]
    if draw(st.booleans()):
        lines.append('  "a drawn spec"')
    if kind == "extends":  # the base's declarations and update; override or add hypers
        if draw(st.booleans()):
            lines.append(f"hyper lr = {draw(st.sampled_from(['0.5', '1e-3', '0']))}")
        for k in range(draw(st.integers(0, 2))):
            lines.append(draw(_hyper(draw(_fresh(names, f"x{k}")), names, False)))
        return Spec("\n".join(lines) + "\n", "optimizer")
    if not schedule and draw(st.integers(0, 3)):
        lines.append("hyper lr = 0.1 in (0, inf)")
        names.host_nums.append("lr")
        names.hyper_nums.append("lr")
    for k in range(draw(st.integers(0 if schedule else 1, 4))):
        lines.append(draw(_hyper(draw(_fresh(names, f"h{k}")), names, schedule)))
    inputs = ()
    if not schedule:
        for k in range(draw(st.integers(0, 3))):
            lines.append(draw(_state(draw(_fresh(names, f"s{k}")), names)))
        if draw(st.integers(0, 6)) == 0:
            lines.append('input q "an extra array"')
            names.inputs.append("q")
            names.element_nums.append("q")
            names.host_bools.append("has_q")
            inputs = ("q",)
    if draw(st.integers(0, 3)) == 0:
        lines.append(f"require {draw(bool_expr(_host_scope(names, hyper_only=True), 1))}, "
                     f'"a requirement"')
    lines.append("update:")
    for _ in range(draw(st.integers(0, 4))):
        lines += ["  " + line for line in draw(_statement(names, schedule))]
    for state in names.states:  # most states are assigned (after what came before)
        if draw(st.integers(0, 4)):
            element = _element_scope(names)
            guard = (f" if {draw(bool_expr(element, 1))}" if draw(st.integers(0, 3)) == 0
                     else "")
            lines.append(f"  {state} = {draw(number_expr(element))}{guard}")
    if names.row_states or names.col_states:  # the factored states' updates, then a read
        for _ in range(draw(st.integers(1, 2))):
            lines += ["  " + line for line in draw(_statement(names, schedule, "axis"))]
        if draw(st.booleans()):
            lines += ["  " + line for line in draw(_statement(names, schedule, "axis_read"))]
    if names.scalars and draw(st.integers(0, 3)):
        lines += ["  " + line for line in draw(_statement(names, schedule, "scalar"))]
    if schedule:
        lines.append(f"  lr = {draw(number_expr(_host_scope(names)))}")
    else:
        scope = _element_scope(names, axis=False)
        lines.append(f"  p = p - {draw(number_expr(scope))}")
        if names.row_states or names.col_states:
            if draw(st.booleans()):
                read = _element_scope(names, reductions=False, axis=True)
                lines.append(f"  p = factored ? p - {draw(number_expr(read, 1))} : p")
    return Spec("\n".join(lines) + "\n", kind, inputs)


# --- plausible mistakes: each puts one in a spec's lines (None where it cannot) -------------

def _insert_update(line: str):
    def put(lines: list[str], draw) -> list[str] | None:
        if "update:" not in lines:
            return None
        at = draw(st.integers(lines.index("update:") + 1, len(lines)))
        return lines[:at] + ["  " + line] + lines[at:]
    return put


def _insert_declaration(line: str):
    def put(lines: list[str], draw) -> list[str] | None:
        at = lines.index("update:") if "update:" in lines else len(lines)
        return lines[:at] + [line] + lines[at:]
    return put


def _drop_line(lines, draw):
    if len(lines) < 2:
        return None
    at = draw(st.integers(1, len(lines) - 1))
    return lines[:at] + lines[at + 1:]


def _swap_lines(lines, draw):
    if "update:" not in lines or len(lines) - lines.index("update:") < 3:
        return None
    start = lines.index("update:") + 1
    at = draw(st.integers(start, len(lines) - 2))
    return lines[:at] + [lines[at + 1], lines[at]] + lines[at + 2:]


def _duplicate_line(lines, draw):
    at = draw(st.integers(1, len(lines) - 1)) if len(lines) > 1 else 0
    return lines[:at + 1] + [lines[at]] + lines[at + 1:]


def _unbalance(lines, draw):
    candidates = [i for i, line in enumerate(lines) if ")" in line]
    if not candidates:
        return None
    at = draw(st.sampled_from(candidates))
    return lines[:at] + [lines[at].replace(")", "", 1)] + lines[at + 1:]


def _stray_character(lines, draw):
    at = draw(st.integers(0, len(lines) - 1))
    line = lines[at]
    column = draw(st.integers(0, len(line)))
    char = draw(st.sampled_from(["@", "$", "=", ",", "(", "?", ":", "'", '"', "\t", "#"]))
    return lines[:at] + [line[:column] + char + line[column:]] + lines[at + 1:]


def _both(*puts):
    """Several changes, one after another."""
    def put(lines, draw):
        for one in puts:
            lines = one(lines, draw) if lines is not None else None
        return lines
    return put


def _extend_a_schedule(lines, draw):
    if lines[0] != "optimizer fz":
        return None
    return ["optimizer fz extends one_cycle"] + lines[1:]


def _rename_p(lines, draw):
    out = [re.sub(r"^(\s+)p = ", r"\1pp = ", line) for line in lines]
    return out if out != lines else None


#: Each mistake by name.
MISTAKES = {
    "undefined-name": _insert_update("p = p - nope * g"),
    "assign-hyper": _insert_update("lr = 1"),
    "assign-step": _insert_update("t = t + 1"),
    "assign-rows": _insert_update("rows = 2"),
    "bool-as-number": _insert_update("p = p - (g > 0) * g"),
    "number-as-condition": _insert_update("p = p - g if g"),
    "arity": _insert_update("p = p - sqrt(g, g)"),
    "unknown-function": _insert_update("p = p - sqroot(g)"),
    "outside-domain": _insert_declaration("hyper bad = 2 in [0, 1)"),
    "empty-domain": _insert_declaration("hyper bad = 0 in [1, 0]"),
    "int-not-whole": _insert_declaration("hyper bad: int = 1.5"),
    "bool-with-domain": _insert_declaration("hyper bad = true in [0, 1]"),
    "tuple-without-names": _insert_declaration("hyper bad = (1, 2)"),
    "tuple-read-whole": _insert_update("p = p - bt * g"),
    "none-outside-tuple": _insert_declaration("hyper bad = (none, none) as (n1, n2)"),
    "choice-not-listed": _insert_declaration('hyper bad = "z" in {"a", "b"}'),
    "choice-as-number": _insert_update("p = p - adj * g"),
    "string-compared": _insert_update('p = p - g if g == "a"'),
    "first-assigned-under-condition": _insert_update("fresh = g if true"),
    "per-row-unconditional": _insert_declaration("state bad = 0 per-row"),
    "nested-reduction": _insert_update("p = p - sum(g * norm(g))"),
    "state-from-gradient": _insert_declaration("state bad = g"),
    "scalar-from-element": _insert_declaration("scalar bad = p"),
    "row-mean-alone": _insert_update("p = p - row_mean(g)"),
    "matrix-steps": _insert_update("p = p - orthogonalize(g, 1, 1, 1, 1000, 1e-7)"),
    "matrix-of-reduction": _insert_update("p = p - orthogonalize(g * norm(g), 1, 1, 1, 2, 0)"),
    "require-a-number": _insert_declaration('require 1, "a number"'),
    "require-broken": _insert_declaration('require false, "never holds"'),
    "declare-keyword": _insert_declaration("state update = 0"),
    "declare-builtin": _insert_declaration("hyper rows = 1"),
    "declare-reserved": _insert_declaration("hyper _x = 1"),
    "python-keyword": _insert_declaration("hyper lambda = 1"),
    "duplicate-hyper": _insert_declaration("hyper lr = 0.2"),
    "schedule-state": _insert_declaration("state bad = 0"),
    "deep-number": _insert_update("p = p - 10^10^10 * g"),
    "drop-a-line": _drop_line,
    "swap-lines": _swap_lines,
    "duplicate-a-line": _duplicate_line,
    "unbalanced-parenthesis": _unbalance,
    "stray-character": _stray_character,
    "p-never-assigned": _rename_p,
    # the classes of defect the fuzzer found, each a located error now
    "modulo-by-zero": _insert_update("p = p - g % (1 - 1)"),
    "division-by-zero": _insert_update("p = p - g / 0"),
    "root-of-a-negative-number": _insert_update("p = p - sqrt(-2) * g"),
    "reduction-of-a-normalised-gradient": _both(_insert_update("p = p - sum(g) * g"),
                                                _insert_update("g = g / norm(g)")),
    "state-from-epsilon": _insert_declaration("state bad = epsilon"),
    "scalar-from-factored": _both(_insert_declaration("scalar bad = 0"),
                                  _insert_update("bad = factored ? 1 : 2")),
    "front-end-argument": _insert_declaration("hyper params = 1"),
    "state-named-step": _insert_declaration("state step = 0"),
    "extend-a-schedule": _extend_a_schedule,
}


@st.composite
def mistaken(draw) -> Spec:
    """A well-formed spec with one plausible mistake put in."""
    spec = draw(well_formed())
    lines = spec.text.rstrip("\n").split("\n")
    name = draw(st.sampled_from(sorted(MISTAKES)))
    if name == "tuple-read-whole":
        lines = _insert_declaration("hyper bt = (0.9, 0.99) as (bt1, bt2)")(lines, draw)
    if name == "choice-as-number":
        lines = _insert_declaration('hyper adj = "a" in {"a", "b"}')(lines, draw)
    changed = MISTAKES[name](lines, draw)
    if changed is None:
        return spec
    return Spec("\n".join(changed) + "\n", spec.kind, spec.inputs, name)


@st.composite
def specs(draw, mistakes: float = 0.2) -> Spec:
    """Random specs, about ``mistakes`` of them with a mistake put in on purpose."""
    if draw(st.integers(0, 99)) < round(100 * mistakes):
        return draw(mistaken())
    return draw(well_formed())
