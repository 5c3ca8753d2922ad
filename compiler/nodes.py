"""The spec's abstract syntax tree: frozen dataclasses named after the grammar's rules.

The parser turns Lark's parse tree into these at once; no ``lark.Tree`` leaves the parse stage.
Every node carries the :class:`~optgen.compiler.errors.Span` it was written at, so later stages
can point at the exact place a mistake was made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Span


# --- expressions --------------------------------------------------------------------------

@dataclass(frozen=True)
class Expr:
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Number(Expr):
    text: str  # the literal as written; converted exactly (to a SymPy Rational) when lowered


@dataclass(frozen=True)
class Boolean(Expr):
    value: bool


@dataclass(frozen=True)
class String(Expr):
    value: str  # only compared with a choice hyperparameter: adjust_lr_fn == "original"


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str  # one of + - * / ^
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # one of == != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class BoolOp(Expr):
    op: str  # "and" | "or"
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True)
class Ternary(Expr):
    condition: Expr
    then: Expr
    otherwise: Expr


# --- declarations -------------------------------------------------------------------------

@dataclass(frozen=True)
class Domain:
    """An interval ``low..high``; ``None`` bounds are infinite."""

    span: Span = field(compare=False, repr=False)
    low: float | None
    high: float | None
    low_closed: bool
    high_closed: bool


@dataclass(frozen=True)
class HyperDecl:
    span: Span = field(compare=False, repr=False)
    name: str
    type: str | None  # "float" | "int" | "bool" | "choice", or None to infer from the default
    default: bool | float | int | tuple[float | None, ...] | str  # None: a `none` tuple item
    default_span: Span = field(compare=False, repr=False)
    components: tuple[str, ...]  # names of a tuple's items, e.g. betas as (b1, b2)
    domain: Domain | None
    doc: str | None
    choices: tuple[str, ...] = ()  # a choice hyper's allowed strings


@dataclass(frozen=True)
class StateDecl:
    span: Span = field(compare=False, repr=False)
    name: str
    init: Expr
    condition: Expr | None  # the state exists only while this host condition holds
    scalar: bool = False    # one value per tensor (`scalar x = ...`), not one per element
    axis: str | None = None  # "row" / "col": one value per row / column (`per-row`, `per-col`)
    group: bool = False     # a scalar held once per param group (`scalar d = ... per-group`)


@dataclass(frozen=True)
class InputDecl:
    """``input NAME``: an array the caller passes beside g (Sophia's Hessian estimate)."""

    span: Span = field(compare=False, repr=False)
    name: str
    doc: str | None


@dataclass(frozen=True)
class RequireDecl:
    span: Span = field(compare=False, repr=False)
    condition: Expr
    message: str


@dataclass(frozen=True)
class Assign:
    span: Span = field(compare=False, repr=False)
    target: str
    target_span: Span = field(compare=False, repr=False)
    value: Expr
    condition: Expr | None  # `x = e if c` keeps the old x where c is false


@dataclass(frozen=True)
class Binding:
    """``name = value`` in a claim; a tuple value binds a tuple hyperparameter."""

    span: Span = field(compare=False, repr=False)
    name: str
    value: Expr | tuple[Expr, ...]


@dataclass(frozen=True)
class ClaimDecl:
    """``claim ID: ...``: a relation (optionally in a limit), or an equivalence of two specs."""

    span: Span = field(compare=False, repr=False)
    id: str
    at: tuple[Binding, ...]
    limit: str | None                 # the variable that tends to infinity (always t)
    relation: Expr | None             # a comparison; None for an equivalence
    given: tuple[Expr, ...]
    other: str | None = None          # equivalence: the other spec's name
    other_bindings: tuple[Binding, ...] = ()
    steps: int = 0
    negated: bool = False
    free: tuple["Name", ...] = ()     # ``for all h, ...:``: hypers free though not mentioned


@dataclass(frozen=True)
class SpecAST:
    """One spec file as written."""

    name: str
    name_span: Span = field(compare=False, repr=False)
    base: str | None  # `optimizer adamw extends adam`
    base_span: Span | None = field(compare=False, repr=False)
    description: str
    hypers: tuple[HyperDecl, ...]
    states: tuple[StateDecl, ...]
    requires: tuple[RequireDecl, ...]
    updates: tuple[Assign, ...]
    has_update_section: bool
    claims: tuple[ClaimDecl, ...] = ()
    kind: str = "optimizer"           # "optimizer" | "schedule" | "wrapper" (wraps inner)
    inputs: tuple[InputDecl, ...] = ()
