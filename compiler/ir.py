"""The checked spec: every name resolved to a kind, every expression typed, inheritance merged.

This is what the check stage hands to ``lower``. Expressions are still the AST's nodes (they are
immutable); what is new is that they are known to be well-formed, and :attr:`CheckedSpec.symbols`
says what each name is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from . import nodes as n
from .errors import Span


class Kind(Enum):
    HYPER = "hyperparameter"        # a scalar hyperparameter, or one item of a tuple one
    STEP = "step"                   # t, the 1-based step count
    INPUT = "input"                 # p (the parameter) and g (its gradient), per element
    STATE = "state"                 # per-element optimizer state, kept between steps
    TEMP = "temporary"              # a name assigned in the update section
    CONSTANT = "constant"           # pi


class Level(Enum):
    """Where a value can be computed: once per step on the host (hyperparameters, t); once
    per param group after a reduction over all its tensors (``group_sum``, a ``per-group``
    scalar); once per tensor after a reduction pass (``sum``, ``norm``, a scalar state
    assigned from one); once per channel (``channel_sum``: over every dimension but the
    first); or per element. A value's level is the finest of what it reads, and a value may
    read only values of its own level or coarser ones."""

    HOST = 0
    GROUP = 1
    TENSOR = 2
    CHANNEL = 3
    ELEMENT = 4


class Type(Enum):
    NUMBER = "number"
    BOOL = "bool"
    CHOICE = "choice"  # one of a hyper's strings; only compared with == and !=
    LIST = "list"      # a list hyper of numbers; only passed to list functions (count_le)


@dataclass(frozen=True)
class Interval:
    low: float | None   # None: -inf
    high: float | None  # None: +inf
    low_closed: bool
    high_closed: bool

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        if isinstance(value, float) and math.isinf(value):  # only where the bracket holds it
            bound, closed = (self.high, self.high_closed) if value > 0 else (self.low,
                                                                            self.low_closed)
            return bound is None and closed
        if self.low is not None and (value < self.low or (value == self.low and not self.low_closed)):
            return False
        if self.high is not None and (value > self.high or (value == self.high and not self.high_closed)):
            return False
        return True

    def __str__(self) -> str:
        low = "-inf" if self.low is None else _fmt(self.low)
        high = "inf" if self.high is None else _fmt(self.high)
        return f"{'[' if self.low_closed else '('}{low}, {high}{']' if self.high_closed else ')'}"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass(frozen=True)
class Hyper:
    """A hyperparameter. ``type`` is "float", "int", "bool", "tuple" (of floats), "list" (of
    floats, any length; host functions only) or "choice" (one of ``choices``; generated code
    sees its index)."""

    name: str
    type: str
    default: bool | int | float | tuple[float, ...]
    components: tuple[str, ...]
    domain: Interval | None
    doc: str
    span: Span
    choices: tuple[str, ...] = ()

    @property
    def optional_names(self) -> tuple[str, ...]:
        """Tuple items whose default is ``none``: they may be None (read with ``default()``)."""
        if self.type != "tuple":
            return ()
        return tuple(c for c, v in zip(self.components, self.default) if v is None)

    @property
    def scalar_names(self) -> tuple[str, ...]:
        """The names the update section sees: the tuple's items, or the hyper itself."""
        return self.components if self.type == "tuple" else (self.name,)


@dataclass(frozen=True)
class State:
    name: str
    init: n.Expr                    # host expression over hyperparameters
    condition: n.Expr | None        # host condition over hyperparameters; None: always
    span: Span
    scalar: bool = False            # one value per tensor, updated on the host
    axis: str | None = None         # "row"/"col": factored, one value per row/column (Adafactor)
    group: bool = False             # a scalar held once per param group, updated once a step


@dataclass(frozen=True)
class Require:
    condition: n.Expr
    message: str
    span: Span


@dataclass(frozen=True)
class Statement:
    target: str
    value: n.Expr
    condition: n.Expr | None
    span: Span


@dataclass(frozen=True)
class Claim:
    """A claim of the spec's own, checked: which names it keeps free."""

    decl: n.ClaimDecl
    variables: tuple[str, ...]   # names only the claim uses, constrained by its `given`
    mentioned: tuple[str, ...]   # scalar hyperparameters it mentions: free over their domains


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: Kind
    type: Type
    level: Level


@dataclass(frozen=True)
class CheckedSpec:
    name: str
    description: str
    base: str | None
    hypers: tuple[Hyper, ...]
    states: tuple[State, ...]
    requires: tuple[Require, ...]
    statements: tuple[Statement, ...]
    symbols: dict[str, Symbol]
    claims: tuple[Claim, ...] = ()
    kind: str = "optimizer"         # "optimizer"; "schedule": lr as a function of t; "wrapper":
                                    # runs after an inner optimizer's step (Lookahead)
    inputs: tuple[tuple[str, str], ...] = ()  # extra arrays beside g: (name, doc)

    def hyper(self, name: str) -> Hyper:
        return next(h for h in self.hypers if h.name == name)
