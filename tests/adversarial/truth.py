"""Ground truth for the adversarial claims in ``tests/adversarial/*.opt``, established without
optgen: each claim's truth is derived by hand (the ``reason``) and transcribed here in mpmath,
independently of the compiler, so that ``tests/test_adversarial_claims.py`` can check the
transcription numerically and then score ``optgen verify`` against it.

Meaning of a claim (README, *Verification*): ``p``, ``g`` and states are values before the step,
``p_new`` / ``<state>_new`` after it, a temporary its final value; ``t`` is an integer, t >= 1 in
an optimizer and t >= 0 in a schedule; a hyperparameter the claim mentions (in its relation, a
given, an ``at`` value or an equivalence binding) is free over its declared domain, any other is
at its default; names introduced in ``given`` are free reals; ``require`` lines hold.
``limit t -> oo: a REL b`` means lim (a - b) exists (+-oo allowed) and stands in REL to 0 at
every point, so a limit of 0 does not make ``>`` true, and a limit that does not exist makes
every relation false. An equivalence compares p after every one of its K steps, both specs
started from their initial states on the same p and gradients g1..gK.

Each entry gives the claim's free variables (``free``), its relation, a transcription ``f`` of
the two sides (as functions of a point ``s`` whose attributes are the variables and the step's
results), its givens, and for a false claim a ``witness``: exact rationals for every free
variable, inside every domain, given and require, where the transcription (at 50 digits)
breaks the claim. A limit claim also gives the hand-derived value of lim (a - b) (``limit``),
checked against the transcription at large t; ``NOLIMIT`` where the limit does not exist, with
two subsequences of t (``osc``) along which a - b stays apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import mpmath as mp

HERE = Path(__file__).resolve().parent

#: The value of ``limit`` where lim (a - b) does not exist.
NOLIMIT = "no limit"


class Undefined(ArithmeticError):
    """The transcription is undefined at this point (a zero denominator, a negative radicand)."""


# --- arithmetic on mpmath numbers, each operation as the spec language defines it ---------------

def num(x) -> mp.mpf:
    x = Fraction(x)
    return mp.mpf(x.numerator) / x.denominator


def div(a, b):
    if b == 0:
        raise Undefined("division by zero")
    return a / b


def rsqrt(x):
    if x < 0:
        raise Undefined("square root of a negative number")
    return mp.sqrt(x)


def sgn(x):
    return mp.mpf(1) if x > 0 else mp.mpf(-1) if x < 0 else mp.mpf(0)


def clip(x, lo, hi):
    """``clip(x, lo, hi)`` = min(max(x, lo), hi), as numpy.clip and torch.clamp."""
    return min(max(x, lo), hi)


def cospi(x):
    """cos(pi * x), exact at integers and half-integers."""
    return mp.cospi(x)


def ipow(base, exponent):
    """base^exponent for an integer exponent >= 0, with 0^0 = 1."""
    return base ** exponent


# --- domains ----------------------------------------------------------------------------------

_REAL_EDGES = ("0", "1", "-1", "1/2", "-1/2", "2", "-2", "3/10", "-3/10", "7/3", "-7/3",
               "1e-20", "-1e-20", "1e20", "-1e20", "100000", "-100000", "100001", "-100001",
               "1e-8", "-1e-8", "1e5/3")
_RATIOS = ("1e-20", "1e-6", "1/10", "1/3", "1/2", "9/10", "0.999999", "0.99999999999999999999")
_SAFE_RATIOS = ("1/100", "1/10", "1/3", "1/2", "9/10", "99/100")
_OFFSETS = ("1e-20", "1e-8", "1/10", "1/2", "1", "3", "100", "100000", "1e20")
_SAFE_OFFSETS = ("1/10", "1/2", "1", "3", "100")
_INTS = (0, 1, 2, 3, 9, 10, 11, 99, 100, 101, 199, 200, 201, 1000, 10**6)


def _frac(text: str) -> Fraction:
    return _exact(text) if "e" in text else Fraction(text)


def _exact(text: str) -> Fraction:
    mantissa, _, exponent = text.partition("e")
    if "/" in exponent:  # "1e5/3"
        exponent, _, denominator = exponent.partition("/")
        return Fraction(mantissa) * Fraction(10) ** int(exponent) / int(denominator)
    return Fraction(mantissa) * Fraction(10) ** int(exponent)


@dataclass(frozen=True)
class Domain:
    low: Fraction | None = None
    high: Fraction | None = None
    low_closed: bool = False
    high_closed: bool = False
    integer: bool = False
    nonzero: bool = False

    def contains(self, x: Fraction) -> bool:
        if self.integer and x.denominator != 1:
            return False
        if self.nonzero and x == 0:
            return False
        if self.low is not None and (x < self.low or (x == self.low and not self.low_closed)):
            return False
        if self.high is not None and (x > self.high or (x == self.high and not self.high_closed)):
            return False
        return True

    def edges(self, limit_safe: bool = False) -> list[Fraction]:
        """Values that probe the domain: its closed ends, points just inside them, magnitudes
        from 1e-20 to 1e20 (for a limit claim, interior points away from the ends, where the
        sequence converges quickly)."""
        if self.integer:
            out = [Fraction(i) for i in _INTS]
            if self.low is not None:
                out += [self.low + k for k in range(4)]
        elif self.low is not None and self.high is not None:
            width = self.high - self.low
            out = [self.low + width * _frac(r) for r in (_SAFE_RATIOS if limit_safe else _RATIOS)]
            out += [v for v, c in ((self.low, self.low_closed), (self.high, self.high_closed)) if c]
        elif self.low is not None:
            offsets = _SAFE_OFFSETS if limit_safe else _OFFSETS
            out = [self.low + _frac(o) for o in offsets] + ([self.low] if self.low_closed else [])
        elif self.high is not None:
            offsets = _SAFE_OFFSETS if limit_safe else _OFFSETS
            out = [self.high - _frac(o) for o in offsets] + ([self.high] if self.high_closed else [])
        else:
            out = [_frac(e) for e in _REAL_EDGES]
        return sorted({v for v in out if self.contains(v)})

    def random(self, rng: random.Random) -> Fraction:
        for _ in range(1000):
            if self.integer:
                low = int(self.low) if self.low is not None else -1000
                value = Fraction(rng.choice((rng.randint(low, low + 30), rng.randint(low, low + 3000))))
            elif self.low is not None and self.high is not None:
                value = self.low + (self.high - self.low) * Fraction(rng.random())
            else:
                magnitude = Fraction(10 ** rng.uniform(-6, 6))
                if self.low is not None:
                    value = self.low + magnitude
                elif self.high is not None:
                    value = self.high - magnitude
                else:
                    value = magnitude if rng.random() < 0.5 else -magnitude
            if self.contains(value):
                return value
        raise ValueError(f"cannot sample {self}")


def dom(text: str) -> Domain:
    """``R``, ``R != 0``, ``[0, 1)``, ``(0, inf)``, ``int [1, inf)``."""
    text = text.strip()
    if text == "R":
        return Domain()
    if text == "R != 0":
        return Domain(nonzero=True)
    integer = text.startswith("int ")
    text = text[4:] if integer else text
    low, high = (part.strip() for part in text[1:-1].split(","))
    return Domain(None if low in ("-inf",) else Fraction(low),
                  None if high in ("inf",) else Fraction(high),
                  text[0] == "[", text[-1] == "]", integer)


# --- the specs, transcribed -------------------------------------------------------------------

class Point(dict):
    """A point: the variables' values, and the step's results computed on first use (so a
    claim about v_new is defined where p_new is not)."""

    def __init__(self, values, derived=None):
        super().__init__(values)
        self._derived = derived or {}

    def __getattr__(self, name):
        if name in self:
            return self[name]
        if name in self._derived:
            value = self._derived[name](self)
            self[name] = value
            return value
        raise AttributeError(name)


@dataclass
class Spec:
    file: str
    kind: str                                 # "optimizer" | "schedule"
    hypers: dict[str, tuple[str, str]]        # name -> (default, domain)
    states: tuple[str, ...] = ()
    model: dict[str, Callable] = field(default_factory=dict)   # result name -> f(point)
    require: Callable | None = None           # point -> [(lhs, op, rhs)]

    def domain(self, name: str) -> Domain:
        if name in self.hypers:
            return dom(self.hypers[name][1])
        if name == "t":
            return dom("int [1, inf)" if self.kind == "optimizer" else "int [0, inf)")
        return dom("R")


SPECS: dict[str, Spec] = {}


def spec(file, kind, hypers, states=(), require=None, **model):
    SPECS[file] = Spec(file, kind, hypers, tuple(states), model, require)


spec("momentum.opt", "optimizer", {"lr": ("1/100", "[0, inf)"), "beta": ("9/10", "[0, 1]")},
     ["m"],
     m_new=lambda s: s.beta * s.m + (1 - s.beta) * s.g,
     p_new=lambda s: s.p - s.lr * s.m_new)

spec("finite_momentum.opt", "optimizer",
     {"lr": ("1/100", "[0, inf)"), "beta": ("9/10", "[0, 1]")}, ["prev"],
     d=lambda s: s.g + s.beta * s.prev,
     prev_new=lambda s: s.g,
     p_new=lambda s: s.p - s.lr * s.d)

spec("adam_bc.opt", "optimizer",
     {"lr": ("1/1000", "[0, inf)"), "b1": ("9/10", "[0, 1)"), "b2": ("999/1000", "[0, 1)"),
      "eps": ("1/100000000", "[0, inf)")}, ["m", "v"],
     m_new=lambda s: s.b1 * s.m + (1 - s.b1) * s.g,
     v_new=lambda s: s.b2 * s.v + (1 - s.b2) * s.g ** 2,
     mhat=lambda s: div(s.m_new, 1 - ipow(s.b1, s.t)),
     vhat=lambda s: div(s.v_new, 1 - ipow(s.b2, s.t)),
     p_new=lambda s: s.p - s.lr * div(s.mhat, rsqrt(s.vhat) + s.eps))

spec("rms.opt", "optimizer",
     {"lr": ("1/100", "[0, inf)"), "alpha": ("99/100", "[0, 1]"),
      "eps": ("1/100000000", "(0, inf)")}, ["v"],
     v_new=lambda s: s.alpha * s.v + (1 - s.alpha) * s.g ** 2,
     p_new=lambda s: s.p - s.lr * div(s.g, rsqrt(s.v_new) + s.eps))

spec("clip.opt", "optimizer",
     {"lr": ("1/10", "[0, inf)"), "s": ("100000", "(0, inf)"), "lo": ("-1", "(-inf, inf)"),
      "hi": ("1", "(-inf, inf)")}, [],
     require=lambda s: [(s.lo, "<", s.hi)],
     c=lambda s: clip(s.g, -s.s, s.s),
     d=lambda s: clip(s.g, s.lo, s.hi),
     p_new=lambda s: s.p - s.lr * s.c)

spec("adv_signsgd.opt", "optimizer", {"lr": ("1/10000", "[0, inf)")}, [],
     p_new=lambda s: s.p - s.lr * sgn(s.g))

spec("lion.opt", "optimizer",
     {"lr": ("1/10000", "[0, inf)"), "b1": ("9/10", "[0, 1]"), "b2": ("99/100", "[0, 1]")},
     ["m"],
     c=lambda s: s.b1 * s.m + (1 - s.b1) * s.g,
     p_new=lambda s: s.p - s.lr * sgn(s.c),
     m_new=lambda s: s.b2 * s.m + (1 - s.b2) * s.g)

spec("exp_sched.opt", "schedule", {"base_lr": ("1/10", "[0, inf)"), "gamma": ("9/10", "[0, 1]")},
     lr=lambda s: s.base_lr * ipow(s.gamma, s.t))

spec("cos_sched.opt", "schedule", {"base_lr": ("1/10", "[0, inf)"), "T": ("100", "int [1, inf)")},
     lr=lambda s: s.base_lr * (1 + cospi(s.t / s.T)) / 2)

spec("linear_sched.opt", "schedule",
     {"base_lr": ("1/10", "[0, inf)"), "start": ("1/4", "[0, 1]"), "n": ("10", "int [1, inf)")},
     lr=lambda s: s.base_lr * (s.start + (1 - s.start) * min(s.t, s.n) / s.n))

spec("step_sched.opt", "schedule",
     {"base_lr": ("1/10", "[0, inf)"), "gamma": ("1/2", "[0, 1]"), "k": ("10", "int [1, inf)")},
     lr=lambda s: s.base_lr * ipow(s.gamma, mp.floor(s.t / s.k)))

spec("warmup_sched.opt", "schedule",
     {"base_lr": ("1/10", "[0, inf)"), "warmup": ("10", "int [1, inf)"),
      "total": ("100", "int [2, inf)")},
     require=lambda s: [(s.warmup, "<", s.total)],
     lr=lambda s: (s.base_lr * s.t / s.warmup if s.t < s.warmup else
                   s.base_lr * div(s.total - min(s.t, s.total), s.total - s.warmup)))


# --- whole runs, for equivalences (each from its spec's initial state) ---------------------------

def _lr_at(lr):
    return lr if callable(lr) else (lambda k: lr)


def run_momentum(p, gs, lr, beta):
    out, m = [], 0
    for g in gs:
        m = beta * m + (1 - beta) * g
        p = p - lr * m
        out.append(p)
    return out


def run_finite_momentum(p, gs, lr, beta):
    out, prev = [], 0
    for g in gs:
        d = g + beta * prev
        prev = g
        p = p - lr * d
        out.append(p)
    return out


def run_adam_bc(p, gs, lr, b1, b2, eps):
    out, m, v = [], 0, 0
    for t, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        mhat, vhat = div(m, 1 - ipow(b1, t)), div(v, 1 - ipow(b2, t))
        p = p - lr * div(mhat, rsqrt(vhat) + eps)
        out.append(p)
    return out


def run_lion(p, gs, lr, b1, b2):
    out, m = [], 0
    for g in gs:
        c = b1 * m + (1 - b1) * g
        p = p - lr * sgn(c)
        m = b2 * m + (1 - b2) * g
        out.append(p)
    return out


def run_signsgd(p, gs, lr):
    return run_lion(p, gs, lr, 0, 0)


def run_torch_sgd(p, gs, lr, momentum=0, dampening=0):
    """torch.optim.SGD (no weight decay, no Nesterov): the buffer starts as the first gradient,
    then buf = momentum*buf + (1 - dampening)*g; momentum = 0 keeps no buffer."""
    lr, out, buf = _lr_at(lr), [], None
    for t, g in enumerate(gs, start=1):
        if momentum != 0:
            buf = g if buf is None else momentum * buf + (1 - dampening) * g
            g = buf
        p = p - lr(t) * g
        out.append(p)
    return out


def run_torch_rmsprop(p, gs, lr, alpha, eps):
    """torch.optim.RMSprop, plain (no momentum, not centered, no weight decay)."""
    lr, out, v = _lr_at(lr), [], 0
    for t, g in enumerate(gs, start=1):
        v = alpha * v + (1 - alpha) * g ** 2
        p = p - lr(t) * div(g, rsqrt(v) + eps)
        out.append(p)
    return out


def run_torch_adam(p, gs, lr, b1, b2, eps):
    """torch.optim.Adam, plain: p -= lr/(1 - b1^t) * m / (sqrt(v)/sqrt(1 - b2^t) + eps)."""
    out, m, v = [], 0, 0
    for t, g in enumerate(gs, start=1):
        m = m + (1 - b1) * (g - m)
        v = b2 * v + (1 - b2) * g ** 2
        denom = div(rsqrt(v), rsqrt(1 - ipow(b2, t))) + eps
        p = p - div(lr, 1 - ipow(b1, t)) * div(m, denom)
        out.append(p)
    return out


# --- the claims -------------------------------------------------------------------------------

@dataclass
class Claim:
    spec: str
    id: str
    truth: bool
    reason: str
    free: tuple[str, ...]
    rel: str                                  # == <= < >= > or "equiv"
    f: Callable                               # point -> (lhs, rhs); equiv: -> (thunk, thunk)
    given: Callable | None = None             # point -> [(lhs, op, rhs)]
    witness: dict[str, str] | None = None
    at: dict[str, Any] = field(default_factory=dict)   # pins: value or f(point)
    limit: Callable | None = None             # point -> lim (lhs - rhs), +-inf or NOLIMIT
    osc: Callable | None = None               # point -> (k -> t, k -> t) for NOLIMIT
    domains: dict[str, str] = field(default_factory=dict)
    negated: bool = False                     # "not equivalent": true where the runs differ

    @property
    def universal(self) -> bool:
        """Whether the universal statement behind the claim (its relation at every point, or
        for ``not equivalent`` the equivalence) holds: then samples must all satisfy it;
        otherwise a witness breaks it."""
        return self.truth != self.negated

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec, self.id)

    @property
    def is_limit(self) -> bool:
        return self.limit is not None

    def domain(self, name: str) -> Domain:
        if name in self.domains:
            return dom(self.domains[name])
        return SPECS[self.spec].domain(name)


CLAIMS: list[Claim] = []


def claim(spec_file, id, truth, reason, free, rel, f, **kw):
    CLAIMS.append(Claim(spec_file, id, truth, reason, tuple(free.split()), rel, f, **kw))


def T(*a, **k):
    claim(*a[:2], True, *a[2:], **k)


def F(*a, **k):
    claim(*a[:2], False, *a[2:], **k)


def NOT_T(*a, **k):
    """A true ``not equivalent`` claim: the witness is a point where the runs differ."""
    claim(*a[:2], True, *a[2:], negated=True, **k)


def NOT_F(*a, **k):
    """A false ``not equivalent`` claim: the runs agree everywhere (sampled)."""
    claim(*a[:2], False, *a[2:], negated=True, **k)


# momentum.opt: m = beta*m + (1 - beta)*g, p -= lr*m; lr = 1/100 in [0, oo), beta = 9/10 in [0, 1]
S = "momentum.opt"
T(S, "t-positive", "an optimizer's t starts at 1", "p g m t", ">=", lambda s: (s.t, 1))
F(S, "t-above-one", "t = 1 is a step", "p g m t", ">", lambda s: (s.t, 1),
  witness=dict(p="0", g="0", m="0", t="1"))
T(S, "moves-by-lr-m", "p_new = p - lr*m_new by the update", "p g m t lr", "==",
  lambda s: (s.p - s.p_new, s.lr * s.m_new))
F(S, "moves-by-lr-m-old", "the step uses the new buffer, not the old one", "p g m t lr", "==",
  lambda s: (s.p - s.p_new, s.lr * s.m), witness=dict(p="0", g="0", m="1", t="1", lr="1"))
T(S, "convex-upper", "m_new is a convex combination of m and g (beta = 9/10)", "p g m t G", "<=",
  lambda s: (s.m_new, s.G), given=lambda s: [(s.m, "<=", s.G), (s.g, "<=", s.G)])
T(S, "convex-lower", "convex combination, lower bound", "p g m t L", ">=",
  lambda s: (s.m_new, s.L), given=lambda s: [(s.L, "<=", s.m), (s.L, "<=", s.g)])
F(S, "convex-upper-strict", "m = g = G gives m_new = G", "p g m t G", "<",
  lambda s: (s.m_new, s.G), given=lambda s: [(s.m, "<=", s.G), (s.g, "<=", s.G)],
  witness=dict(p="0", g="1", m="1", t="1", G="1"))
T(S, "convex-upper-any-beta", "convex combination for every beta in [0, 1]", "p g m t G beta",
  "<=", lambda s: (s.m_new, s.G),
  given=lambda s: [(s.m, "<=", s.G), (s.g, "<=", s.G), (s.beta, ">=", 0)])
F(S, "convex-upper-one-sided", "g above G pulls m_new above G", "p g m t G", "<=",
  lambda s: (s.m_new, s.G), given=lambda s: [(s.m, "<=", s.G)],
  witness=dict(p="0", g="1", m="0", t="1", G="0"))
T(S, "beta-one-freezes", "beta = 1: m_new = m", "p g m t", "==", lambda s: (s.m_new, s.m),
  at=dict(beta="1"))
F(S, "beta-one-still", "beta = 1 still moves p by lr*m", "p g m t", "==",
  lambda s: (s.p_new, s.p), at=dict(beta="1"), witness=dict(p="0", g="0", m="1", t="1"))
T(S, "beta-zero-is-sgd", "beta = 0: m_new = g", "p g m t lr", "==",
  lambda s: (s.p_new, s.p - s.lr * s.g), at=dict(beta="0"))
F(S, "beta-zero-wrong-sign", "the step goes against g", "p g m t lr", "==",
  lambda s: (s.p_new, s.p + s.lr * s.g), at=dict(beta="0"),
  witness=dict(p="0", g="1", m="0", t="1", lr="1"))
F(S, "descends-any-buffer", "a negative buffer moves p up", "p g m t", "<=",
  lambda s: (s.p_new, s.p), given=lambda s: [(s.g, ">=", 0)],
  witness=dict(p="0", g="0", m="-1", t="1"))
T(S, "descends", "m_new >= 0, lr >= 0", "p g m t", "<=", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">=", 0), (s.m, ">=", 0)])
F(S, "descends-strictly", "g = m = 0: no move", "p g m t", "<", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">=", 0), (s.m, ">=", 0)], witness=dict(p="0", g="0", m="0", t="1"))
T(S, "buffer-nonnegative", "convex combination of nonnegatives", "p g m t", ">=",
  lambda s: (s.m_new, 0), given=lambda s: [(s.m, ">=", 0), (s.g, ">=", 0)])
F(S, "buffer-positive-any-m", "a large negative m dominates", "p g m t", ">",
  lambda s: (s.m_new, 0), given=lambda s: [(s.g, ">", 0)],
  witness=dict(p="0", g="1/10", m="-1", t="1"))
T(S, "buffer-positive", "(1 - 9/10)*g > 0 and 9/10*m >= 0", "p g m t", ">",
  lambda s: (s.m_new, 0), given=lambda s: [(s.g, ">", 0), (s.m, ">=", 0)])
F(S, "buffer-positive-any-beta", "beta = 1 (closed end), m = 0: m_new = 0", "p g m t beta", ">",
  lambda s: (s.m_new, 0), given=lambda s: [(s.g, ">", 0), (s.m, ">=", 0), (s.beta, ">=", 0)],
  witness=dict(p="0", g="1", m="0", t="1", beta="1"))
T(S, "buffer-positive-beta-below-one", "(1 - beta)*g > 0 for beta < 1", "p g m t beta", ">",
  lambda s: (s.m_new, 0), given=lambda s: [(s.g, ">", 0), (s.m, ">=", 0), (1, ">", s.beta)])
F(S, "moves-any-lr", "lr = 0 (closed end) does not move", "p g m t lr", ">",
  lambda s: ((s.p_new - s.p) ** 2, 0),
  given=lambda s: [(s.g, "!=", 0), (s.m, "==", 0), (s.lr, ">=", 0)],
  witness=dict(p="0", g="1", m="0", t="1", lr="0"))
T(S, "moves-positive-lr", "m_new = g/10 != 0 and lr > 0", "p g m t lr", ">",
  lambda s: ((s.p_new - s.p) ** 2, 0),
  given=lambda s: [(s.g, "!=", 0), (s.m, "==", 0), (s.lr, ">", 0)])
T(S, "first-step", "beta = 0: a plain gradient step", "p g t lr", "==",
  lambda s: (s.p_new, s.p - s.lr * s.g), at=dict(m="0", beta="0"))
T(S, "buffer-shrinks", "g = 0: m_new = 9/10*m", "p g m t", "<=",
  lambda s: (s.m_new ** 2, s.m ** 2), given=lambda s: [(s.g, "==", 0)])
T(S, "buffer-shrinks-strictly", "81/100*m^2 < m^2 for m != 0", "p g m t", "<",
  lambda s: (s.m_new ** 2, s.m ** 2), given=lambda s: [(s.g, "==", 0), (s.m, "!=", 0)])


def _equiv(mine, other):
    return lambda s: (lambda: mine(s), lambda: other(s))


T(S, "same-as-sgd-momentum", "EMA momentum is torch's momentum with lr*(1 - beta): by induction "
  "m_k = (1 - beta)*buf_k; beta = 0 is plain SGD on both sides, beta = 1 moves neither",
  "p g1 g2 g3 lr beta", "equiv", _equiv(
      lambda s: run_momentum(s.p, [s.g1, s.g2, s.g3], s.lr, s.beta),
      lambda s: run_torch_sgd(s.p, [s.g1, s.g2, s.g3], s.lr * (1 - s.beta), s.beta)))
F(S, "unscaled-sgd-momentum", "the first step is lr*(1 - beta)*g1 against lr*g1",
  "p g1 lr beta", "equiv", _equiv(
      lambda s: run_momentum(s.p, [s.g1], s.lr, s.beta),
      lambda s: run_torch_sgd(s.p, [s.g1], s.lr, s.beta)),
  witness=dict(p="0", g1="1", lr="1", beta="1/2"))
T(S, "beta-zero-is-plain-sgd", "beta = 0: m = g", "p g1 g2 lr", "equiv", _equiv(
    lambda s: run_momentum(s.p, [s.g1, s.g2], s.lr, 0),
    lambda s: run_torch_sgd(s.p, [s.g1, s.g2], s.lr)), at=dict(beta="0"))
T(S, "dampened-one-step", "torch's first step ignores dampening: buf = g1",
  "p g1 lr beta", "equiv", _equiv(
      lambda s: run_momentum(s.p, [s.g1], s.lr, s.beta),
      lambda s: run_torch_sgd(s.p, [s.g1], s.lr * (1 - s.beta), s.beta, s.beta)))
NOT_T(S, "not-unscaled-one-step", "the first steps differ unless beta = 0", "p g1 lr beta",
      "equiv", _equiv(lambda s: run_momentum(s.p, [s.g1], s.lr, s.beta),
                      lambda s: run_torch_sgd(s.p, [s.g1], s.lr, s.beta)),
      witness=dict(p="0", g1="1", lr="1", beta="1/2"))
NOT_F(S, "not-same-as-scaled", "the two are equivalent (same-as-sgd-momentum)",
      "p g1 g2 g3 lr beta", "equiv", _equiv(
          lambda s: run_momentum(s.p, [s.g1, s.g2, s.g3], s.lr, s.beta),
          lambda s: run_torch_sgd(s.p, [s.g1, s.g2, s.g3], s.lr * (1 - s.beta), s.beta)))
F(S, "dampened-two-steps", "step 2: torch adds (1 - beta)^2*lr*g2, EMA (1 - beta)*lr*g2",
  "p g1 g2 lr beta", "equiv", _equiv(
      lambda s: run_momentum(s.p, [s.g1, s.g2], s.lr, s.beta),
      lambda s: run_torch_sgd(s.p, [s.g1, s.g2], s.lr * (1 - s.beta), s.beta, s.beta)),
  witness=dict(p="0", g1="0", g2="1", lr="1", beta="1/2"))

# finite_momentum.opt: d = g + beta*prev, prev = g, p -= lr*d; lr = 1/100, beta = 9/10 in [0, 1]
S = "finite_momentum.opt"
T(S, "keeps-the-gradient", "prev = g", "p g prev t", "==", lambda s: (s.prev_new, s.g))
T(S, "direction", "the temporary's definition", "p g prev t beta", "==",
  lambda s: (s.d, s.g + s.beta * s.prev))
T(S, "two-steps-as-heavy-ball", "buf1 = g1, buf2 = beta*g1 + g2 = d2", "p g1 g2 lr beta", "equiv",
  _equiv(lambda s: run_finite_momentum(s.p, [s.g1, s.g2], s.lr, s.beta),
         lambda s: run_torch_sgd(s.p, [s.g1, s.g2], s.lr, s.beta)))
F(S, "three-steps-as-heavy-ball", "step 3: heavy ball keeps beta^2*g1, this forgets it",
  "p g1 g2 g3 lr beta", "equiv",
  _equiv(lambda s: run_finite_momentum(s.p, [s.g1, s.g2, s.g3], s.lr, s.beta),
         lambda s: run_torch_sgd(s.p, [s.g1, s.g2, s.g3], s.lr, s.beta)),
  witness=dict(p="0", g1="1", g2="0", g3="0", lr="1", beta="1/2"))
NOT_T(S, "not-heavy-ball-over-three", "step 3 differs", "p g1 g2 g3 lr beta", "equiv",
      _equiv(lambda s: run_finite_momentum(s.p, [s.g1, s.g2, s.g3], s.lr, s.beta),
             lambda s: run_torch_sgd(s.p, [s.g1, s.g2, s.g3], s.lr, s.beta)),
      witness=dict(p="0", g1="1", g2="0", g3="0", lr="1", beta="1/2"))
NOT_F(S, "not-heavy-ball-over-two", "they agree for two steps", "p g1 g2 lr beta", "equiv",
      _equiv(lambda s: run_finite_momentum(s.p, [s.g1, s.g2], s.lr, s.beta),
             lambda s: run_torch_sgd(s.p, [s.g1, s.g2], s.lr, s.beta)))
T(S, "three-steps-at-beta-zero", "beta = 0: d = g", "p g1 g2 g3 lr", "equiv",
  _equiv(lambda s: run_finite_momentum(s.p, [s.g1, s.g2, s.g3], s.lr, 0),
         lambda s: run_torch_sgd(s.p, [s.g1, s.g2, s.g3], s.lr)), at=dict(beta="0"))
T(S, "one-step-as-sgd", "prev starts at 0: d1 = g1", "p g1 lr", "equiv",
  _equiv(lambda s: run_finite_momentum(s.p, [s.g1], s.lr, num("9/10")),
         lambda s: run_torch_sgd(s.p, [s.g1], s.lr)))
F(S, "two-steps-as-sgd", "step 2 adds 9/10*lr*g1", "p g1 g2 lr", "equiv",
  _equiv(lambda s: run_finite_momentum(s.p, [s.g1, s.g2], s.lr, num("9/10")),
         lambda s: run_torch_sgd(s.p, [s.g1, s.g2], s.lr)),
  witness=dict(p="0", g1="1", g2="0", lr="1"))
T(S, "descends-same-signs", "d >= 0", "p g prev t", "<=", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">=", 0), (s.prev, ">=", 0)])
F(S, "descends-mixed-signs", "g = 0, prev < 0 moves p up", "p g prev t", "<=",
  lambda s: (s.p_new, s.p), given=lambda s: [(s.g, ">=", 0), (0, ">", s.prev)],
  witness=dict(p="0", g="0", prev="-1", t="1"))
T(S, "step-bounded", "|g + 9/10*prev| <= |g| + |prev|", "p g prev t lr", "<=",
  lambda s: (abs(s.p_new - s.p), s.lr * (abs(s.g) + abs(s.prev))))
F(S, "step-bounded-by-g", "g = 0, prev = 1 still moves", "p g prev t lr beta", "<=",
  lambda s: (abs(s.p_new - s.p), s.lr * abs(s.g)), given=lambda s: [(s.beta, ">=", 0)],
  witness=dict(p="0", g="0", prev="1", t="1", lr="1", beta="1"))

# adam_bc.opt: lr = 1/1000, b1 = 9/10, b2 = 999/1000 in [0, 1), eps = 1e-8 in [0, oo)
S = "adam_bc.opt"
T(S, "v-stays-nonnegative", "a convex combination of v >= 0 and g^2", "p g m v t", ">=",
  lambda s: (s.v_new, 0), given=lambda s: [(s.v, ">=", 0)])
F(S, "v-nonnegative-from-anywhere", "the state v is a free real: v = -1, g = 0", "p g m v t",
  ">=", lambda s: (s.v_new, 0), witness=dict(p="0", g="0", m="0", v="-1", t="1"))
F(S, "v-positive", "v = g = 0", "p g m v t", ">", lambda s: (s.v_new, 0),
  given=lambda s: [(s.v, ">=", 0)], witness=dict(p="0", g="0", m="0", v="0", t="1"))
T(S, "v-positive-for-nonzero-g", "(1 - 999/1000)*g^2 > 0", "p g m v t", ">",
  lambda s: (s.v_new, 0), given=lambda s: [(s.v, ">=", 0), (s.g, "!=", 0)])
T(S, "v-positive-any-b2", "b2 in [0, 1) is open at 1: (1 - b2)*g^2 > 0", "p g m v t b2", ">",
  lambda s: (s.v_new, 0), given=lambda s: [(s.v, ">=", 0), (s.g, "!=", 0), (s.b2, ">=", 0)])
T(S, "bias-factor-at-most-one", "t >= 1, b1 in [0, 1): b1^t <= b1, so 1 - b1^t >= 1 - b1 > 0",
  "p g m v t b1", "<=", lambda s: (div(1 - s.b1, 1 - ipow(s.b1, s.t)), 1))
F(S, "bias-factor-below-one", "t = 1 gives exactly 1", "p g m v t b1", "<",
  lambda s: (div(1 - s.b1, 1 - ipow(s.b1, s.t)), 1),
  witness=dict(p="0", g="0", m="0", v="0", t="1", b1="1/2"))
T(S, "bias-factor-below-one-later", "t >= 2, 0 < b1 < 1: b1^t < b1", "p g m v t b1", "<",
  lambda s: (div(1 - s.b1, 1 - ipow(s.b1, s.t)), 1),
  given=lambda s: [(s.t, ">=", 2), (s.b1, ">", 0)])
T(S, "bias-factor-at-least", "0 < 1 - b1^t <= 1", "p g m v t b1", ">=",
  lambda s: (div(1 - s.b1, 1 - ipow(s.b1, s.t)), 1 - s.b1))
T(S, "bias-power-at-most-one", "b1 in [0, 1)", "p g m v t b1", "<=",
  lambda s: (ipow(s.b1, s.t), 1))
T(S, "bias-power-below-b1", "t >= 1 and b1 in [0, 1)", "p g m v t b1", "<=",
  lambda s: (ipow(s.b1, s.t), s.b1))
F(S, "bias-power-below-b1-sq", "t = 1: b1 > b1^2", "p g m v t b1", "<=",
  lambda s: (ipow(s.b1, s.t), s.b1 ** 2),
  witness=dict(p="0", g="0", m="0", v="0", t="1", b1="1/2"))
T(S, "first-step-is-sign", "mhat = g, vhat = g^2, eps = 0: p - lr*g/|g|", "p g lr", "==",
  lambda s: (s.p_new, s.p - s.lr * sgn(s.g)), given=lambda s: [(s.g, "!=", 0)],
  at=dict(t="1", m="0", v="0", eps="0"))
F(S, "first-step-is-sign-with-eps", "eps = 1e-8 shortens the step: lr*g/(|g| + eps)", "p g lr",
  "==", lambda s: (s.p_new, s.p - s.lr * sgn(s.g)), given=lambda s: [(s.g, "!=", 0)],
  at=dict(t="1", m="0", v="0"), witness=dict(p="0", g="1", lr="1"))
T(S, "first-step-at-most-lr", "|g|/(|g| + eps) <= 1", "p g lr", "<=",
  lambda s: (abs(s.p_new - s.p), s.lr), at=dict(t="1", m="0", v="0"))
F(S, "first-step-below-lr", "lr = 0 (closed end)", "p g lr", "<",
  lambda s: (abs(s.p_new - s.p), s.lr), at=dict(t="1", m="0", v="0"),
  witness=dict(p="0", g="1", lr="0"))
T(S, "first-step-below-lr-eps", "eps > 0 and lr > 0: |g|/(|g| + eps) < 1", "p g lr eps", "<",
  lambda s: (abs(s.p_new - s.p), s.lr), at=dict(t="1", m="0", v="0"),
  given=lambda s: [(s.lr, ">", 0), (s.eps, ">", 0)])
T(S, "mhat-tends-to-m", "1 - (9/10)^t -> 1", "p g m v", "==", lambda s: (s.mhat, s.m_new),
  limit=lambda s: 0)
T(S, "vhat-tends-to-v", "1 - (999/1000)^t -> 1", "p g m v", "==", lambda s: (s.vhat, s.v_new),
  limit=lambda s: 0)
F(S, "mhat-limit-strictly-above", "the limit of the difference is 0, not > 0", "p g m v", ">",
  lambda s: (s.mhat, s.m_new), given=lambda s: [(s.m, ">", 0), (s.g, ">", 0)],
  limit=lambda s: 0, witness=dict(p="0", g="1", m="1", v="0"))
T(S, "mhat-limit-at-least", "the limit of the difference is 0 >= 0", "p g m v", ">=",
  lambda s: (s.mhat, s.m_new), limit=lambda s: 0)
T(S, "mhat-at-least-m", "m_new >= 0 and 1/(1 - b1^t) >= 1", "p g m v t", ">=",
  lambda s: (s.mhat, s.m_new), given=lambda s: [(s.m, ">=", 0), (s.g, ">=", 0)])
F(S, "mhat-at-least-m-any-sign", "a negative m_new is scaled further down", "p g m v t", ">=",
  lambda s: (s.mhat, s.m_new), witness=dict(p="0", g="-1", m="0", v="0", t="2"))
T(S, "b1-zero-mhat-is-g", "0^t = 0 for t >= 1", "p g m v t", "==", lambda s: (s.mhat, s.g),
  at=dict(b1="0"))
T(S, "b1-zero-mhat-is-g-at-t1", "0^1 = 0", "p g m v", "==", lambda s: (s.mhat, s.g),
  at=dict(b1="0", t="1"))
T(S, "b2-zero-vhat-is-g2", "0^t = 0 for t >= 1", "p g m v t", "==", lambda s: (s.vhat, s.g ** 2),
  at=dict(b2="0"))
T(S, "b1-zero-as-rmsprop", "b1 = 0, eps = 0: lr*g/sqrt(v/(1 - b2^t)) = lr*sqrt(1 - b2^t)*g/sqrt(v)"
  " (both sides 0/0 together where v = 0)", "p g1 g2 g3 lr b2", "equiv",
  _equiv(lambda s: run_adam_bc(s.p, [s.g1, s.g2, s.g3], s.lr, 0, s.b2, 0),
         lambda s: run_torch_rmsprop(s.p, [s.g1, s.g2, s.g3],
                                     lambda t: s.lr * mp.sqrt(1 - ipow(s.b2, t)), s.b2, 0)),
  at=dict(b1="0", eps="0"))
F(S, "b1-zero-as-rmsprop-unscaled", "step 1: lr*sign(g1) against lr*sign(g1)/sqrt(1 - b2)",
  "p g1 lr b2", "equiv",
  _equiv(lambda s: run_adam_bc(s.p, [s.g1], s.lr, 0, s.b2, 0),
         lambda s: run_torch_rmsprop(s.p, [s.g1], s.lr, s.b2, 0)),
  at=dict(b1="0", eps="0"), witness=dict(p="0", g1="1", lr="1", b2="3/4"))
T(S, "same-as-catalogue-adam", "lerp(m, g, 1 - b1) = b1*m + (1 - b1)*g and "
  "sqrt(v/(1 - b2^t)) = sqrt(v)/sqrt(1 - b2^t)", "p g1 g2 lr b1 b2 eps", "equiv",
  _equiv(lambda s: run_adam_bc(s.p, [s.g1, s.g2], s.lr, s.b1, s.b2, s.eps),
         lambda s: run_torch_adam(s.p, [s.g1, s.g2], s.lr, s.b1, s.b2, s.eps)))

# rms.opt: v = alpha*v + (1 - alpha)*g^2, p -= lr*g/(sqrt(v) + eps); lr = 1/100,
# alpha = 99/100 in [0, 1], eps = 1e-8 in (0, oo)
S = "rms.opt"
T(S, "stays-nonnegative", "convex combination", "p g v t", ">=", lambda s: (s.v_new, 0),
  given=lambda s: [(s.v, ">=", 0)])
T(S, "stays-bounded", "convex combination of two values <= B", "p g v t B", "<=",
  lambda s: (s.v_new, s.B), given=lambda s: [(s.v, "<=", s.B), (s.g ** 2, "<=", s.B)])
T(S, "stays-bounded-any-alpha", "convex combination for alpha in [0, 1]", "p g v t B alpha", "<=",
  lambda s: (s.v_new, s.B),
  given=lambda s: [(s.v, "<=", s.B), (s.g ** 2, "<=", s.B), (s.alpha, "<=", 1)])
F(S, "bounded-by-g-not-g2", "g = -100 <= B = 1 but g^2 = 10^4", "p g v t B", "<=",
  lambda s: (s.v_new, s.B), given=lambda s: [(s.v, "<=", s.B), (s.g, "<=", s.B)],
  witness=dict(p="0", g="-100", v="0", t="1", B="1"))
T(S, "bounded-below", "v_new - g^2 = alpha*(v - g^2) >= 0", "p g v t", ">=",
  lambda s: (s.v_new, s.g ** 2), given=lambda s: [(s.v, ">=", s.g ** 2)])
F(S, "bounded-below-wrong", "v = 0, g = 1: v_new = 1/100", "p g v t", ">=",
  lambda s: (s.v_new, s.g ** 2), given=lambda s: [(s.v, ">=", 0)],
  witness=dict(p="0", g="1", v="0", t="1"))
T(S, "alpha-one-freezes", "alpha = 1", "p g v t", "==", lambda s: (s.v_new, s.v),
  at=dict(alpha="1"))
F(S, "alpha-one-still", "the step uses the frozen v", "p g v t", "==", lambda s: (s.p_new, s.p),
  at=dict(alpha="1"), given=lambda s: [(s.v, ">=", 0)], witness=dict(p="0", g="1", v="1", t="1"))
T(S, "alpha-zero-is-g2", "alpha = 0", "p g v t", "==", lambda s: (s.v_new, s.g ** 2),
  at=dict(alpha="0"))
T(S, "alpha-zero-step-below-lr", "lr*|g|/(|g| + eps) < lr with eps > 0", "p g v t lr", "<",
  lambda s: (abs(s.p_new - s.p), s.lr), at=dict(alpha="0"), given=lambda s: [(s.lr, ">", 0)])
T(S, "alpha-zero-step-at-most-lr", "|g|/(|g| + eps) <= 1", "p g v t lr", "<=",
  lambda s: (abs(s.p_new - s.p), s.lr), at=dict(alpha="0"))
T(S, "step-bounded", "sqrt(v_new) >= |g|/10, so the step is below 10*lr", "p g v t lr", "<=",
  lambda s: ((s.p_new - s.p) ** 2, 100 * s.lr ** 2), given=lambda s: [(s.v, ">=", 0)])
F(S, "step-bounded-tight", "v = 0, g = 1: (1/(1/10 + 1e-8))^2 > 99", "p g v t lr", "<=",
  lambda s: ((s.p_new - s.p) ** 2, 99 * s.lr ** 2), given=lambda s: [(s.v, ">=", 0)],
  witness=dict(p="0", g="1", v="0", t="1", lr="1"))
T(S, "descends", "g/(sqrt(v_new) + eps) >= 0", "p g v t", "<=", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">=", 0), (s.v, ">=", 0)])
T(S, "descends-strictly", "lr = 1/100 > 0, g > 0", "p g v t", "<", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">", 0), (s.v, ">=", 0)])
F(S, "descends-strictly-any-lr", "lr = 0", "p g v t lr", "<", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">", 0), (s.v, ">=", 0), (s.lr, ">=", 0)],
  witness=dict(p="0", g="1", v="0", t="1", lr="0"))
T(S, "smaller-with-larger-v", "v_new >= (1 - alpha)*g^2 for alpha, v >= 0",
  "p g v t lr alpha eps", "<=", lambda s: (abs(s.p_new - s.p),
                                           s.lr * abs(s.g) / (mp.sqrt((1 - s.alpha) * s.g ** 2) + s.eps)),
  given=lambda s: [(s.v, ">=", 0)])
T(S, "zero-gradient-still", "g = 0", "p g v t", "==", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, "==", 0), (s.v, ">=", 0)])
T(S, "shrinks-at-zero-gradient", "v_new = 99/100*v", "p g v t", "<=", lambda s: (s.v_new, s.v),
  given=lambda s: [(s.g, "==", 0), (s.v, ">=", 0)])
T(S, "shrinks-at-zero-gradient-strictly", "99/100*v < v for v > 0", "p g v t", "<",
  lambda s: (s.v_new, s.v), given=lambda s: [(s.g, "==", 0), (s.v, ">", 0)])
F(S, "shrinks-strictly-any-alpha", "alpha = 1 (closed end) keeps v", "p g v t alpha", "<",
  lambda s: (s.v_new, s.v), given=lambda s: [(s.g, "==", 0), (s.v, ">", 0), (s.alpha, ">=", 0)],
  witness=dict(p="0", g="0", v="1", t="1", alpha="1"))

# clip.opt: c = clip(g, -s, s), d = clip(g, lo, hi), p -= lr*c; lr = 1/10, s = 1e5 in (0, oo),
# lo = -1, hi = 1 (reals), require lo < hi
S = "clip.opt"
T(S, "clipped-bounded", "|clip(g, -s, s)| <= s", "p g t s", "<=", lambda s: (abs(s.c), s.s))
T(S, "clipped-bounded-default-s", "s = 1e5", "p g t", "<=", lambda s: (abs(s.c), 100000))
F(S, "clipped-bounded-strict", "g = s", "p g t s", "<", lambda s: (abs(s.c), s.s),
  witness=dict(p="0", g="1", t="1", s="1"))
F(S, "clipped-bounded-smaller", "g = 1e5 passes unclipped", "p g t", "<=",
  lambda s: (abs(s.c), 99999), witness=dict(p="0", g="100000", t="1"))
T(S, "step-bounded", "|lr*c| <= lr*s", "p g t lr s", "<=", lambda s: (abs(s.p_new - s.p), s.lr * s.s))
T(S, "step-bounded-default", "1/10 * 1e5 = 1e4", "p g t", "<=",
  lambda s: (abs(s.p_new - s.p), 10000))
F(S, "is-plain-sgd", "false only for |g| > 1e5", "p g t lr", "==",
  lambda s: (s.p_new, s.p - s.lr * s.g), witness=dict(p="0", g="200000", t="1", lr="1"))
T(S, "is-plain-sgd-for-moderate-g", "g^2 <= 1e10 means |g| <= 1e5 = s", "p g t lr", "==",
  lambda s: (s.p_new, s.p - s.lr * s.g), given=lambda s: [(s.g ** 2, "<=", 10 ** 10)])
F(S, "is-plain-sgd-one-sided", "g = -2e5 is clipped", "p g t lr", "==",
  lambda s: (s.p_new, s.p - s.lr * s.g), given=lambda s: [(s.g, "<=", 100000)],
  witness=dict(p="0", g="-200000", t="1", lr="1"))
F(S, "is-plain-sgd-off-by-one", "g = 100001 is clipped to 1e5", "p g t lr", "==",
  lambda s: (s.p_new, s.p - s.lr * s.g),
  given=lambda s: [(s.g, "<=", 100001), (s.g, ">=", -100000)],
  witness=dict(p="0", g="100001", t="1", lr="1"))
T(S, "is-plain-sgd-within-s", "|g| <= s: clip is the identity", "p g t lr s", "==",
  lambda s: (s.p_new, s.p - s.lr * s.g), given=lambda s: [(s.g, "<=", s.s), (-s.s, "<=", s.g)])
T(S, "descends", "clip of g >= 0 is >= 0", "p g t", "<=", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">=", 0)])
T(S, "descends-strictly", "lr = 1/10, min(g, s) > 0", "p g t", "<", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">", 0)])
F(S, "descends-strictly-any-lr", "lr = 0", "p g t lr", "<", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">", 0), (s.lr, ">=", 0)], witness=dict(p="0", g="1", t="1", lr="0"))
T(S, "never-longer-than-sgd", "|clip(g)| <= |g|", "p g t lr", "<=",
  lambda s: (abs(s.p_new - s.p), s.lr * abs(s.g)))
F(S, "never-shorter-than-sgd", "g = 2e5 is shortened", "p g t lr", ">=",
  lambda s: (abs(s.p_new - s.p), s.lr * abs(s.g)), witness=dict(p="0", g="200000", t="1", lr="1"))
T(S, "clip-is-odd", "the interval [-s, s] is symmetric", "p g t s", "==",
  lambda s: (s.c, -clip(-s.g, -s.s, s.s)))
T(S, "probe-above-lo", "hi = 1 and require lo < 1: min(max(g, lo), 1) >= lo", "p g t lo", ">=",
  lambda s: (s.d, s.lo))
T(S, "probe-above-lo-both-free", "require lo < hi", "p g t lo hi", ">=", lambda s: (s.d, s.lo),
  given=lambda s: [(s.hi, ">", -1000000)])
T(S, "probe-below-hi", "min(., hi) <= hi", "p g t hi", "<=", lambda s: (s.d, s.hi))
F(S, "probe-strictly-above-lo", "g <= lo gives d = lo", "p g t lo", ">", lambda s: (s.d, s.lo),
  witness=dict(p="0", g="-1", t="1", lo="0"))
F(S, "probe-strictly-below-hi", "g >= hi gives d = hi", "p g t lo hi", "<", lambda s: (s.d, s.hi),
  given=lambda s: [(s.lo, "<", 0)], witness=dict(p="0", g="2", t="1", lo="-1", hi="1"))
T(S, "bounds-ordered", "require lo < hi", "p g t lo hi", ">", lambda s: (s.hi - s.lo, 0))
F(S, "bounds-apart", "lo = 0, hi = 1/2", "p g t lo hi", ">", lambda s: (s.hi - s.lo, 1),
  witness=dict(p="0", g="0", t="1", lo="0", hi="1/2"))
T(S, "probe-between", "d in [lo, hi] when lo < hi", "p g t lo hi", ">=",
  lambda s: ((s.d - s.lo) * (s.hi - s.d), 0))

# adv_signsgd.opt: p -= lr*sign(g); lr = 1/10000
S = "adv_signsgd.opt"
T(S, "unit-step", "sign(g)^2 = 1 for g != 0", "p g t lr", "==",
  lambda s: ((s.p_new - s.p) ** 2, s.lr ** 2), given=lambda s: [(s.g, "!=", 0)])
F(S, "unit-step-always", "g = 0 does not move", "p g t lr", "==",
  lambda s: ((s.p_new - s.p) ** 2, s.lr ** 2), witness=dict(p="0", g="0", t="1", lr="1"))

# lion.opt: c = b1*m + (1 - b1)*g, p -= lr*sign(c), m = b2*m + (1 - b2)*g; lr = 1e-4,
# b1 = 9/10, b2 = 99/100 in [0, 1]
S = "lion.opt"
T(S, "step-at-most-lr", "|sign(c)| <= 1", "p g m t lr", "<=", lambda s: (abs(s.p_new - s.p), s.lr))
F(S, "step-exactly-lr", "c = 0 does not move", "p g m t lr", "==",
  lambda s: (abs(s.p_new - s.p), s.lr), witness=dict(p="0", g="0", m="0", t="1", lr="1"))
T(S, "step-exactly-lr-same-signs", "c > 0", "p g m t lr", "==", lambda s: (s.p_new, s.p - s.lr),
  given=lambda s: [(s.g, ">", 0), (s.m, ">", 0)])
T(S, "step-exactly-lr-nonzero-c", "sign(c)^2 = 1", "p g m t lr", "==",
  lambda s: ((s.p_new - s.p) ** 2, s.lr ** 2), given=lambda s: [(s.c, "!=", 0)])
T(S, "descends", "c >= 0", "p g m t", "<=", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">=", 0), (s.m, ">=", 0)])
F(S, "descends-strictly-any-lr", "lr = 0", "p g m t lr", "<", lambda s: (s.p_new, s.p),
  given=lambda s: [(s.g, ">", 0), (s.m, ">", 0), (s.lr, ">=", 0)],
  witness=dict(p="0", g="1", m="1", t="1", lr="0"))
F(S, "descends-strictly-any-b1", "b1 = 1 (closed end), m = 0: c = 0", "p g m t b1", "<",
  lambda s: (s.p_new, s.p), given=lambda s: [(s.g, ">", 0), (s.b1, ">=", 0)],
  witness=dict(p="0", g="1", m="0", t="1", b1="1"))
T(S, "b1-zero-is-sign-descent", "c = g", "p g m t lr", "==",
  lambda s: (s.p_new, s.p - s.lr * sgn(s.g)), at=dict(b1="0"))
F(S, "b1-one-is-sign-descent", "b1 = 1: c = m", "p g m t lr", "==",
  lambda s: (s.p_new, s.p - s.lr * sgn(s.g)), at=dict(b1="1"),
  witness=dict(p="0", g="1", m="-1", t="1", lr="1"))
T(S, "b2-one-freezes", "b2 = 1", "p g m t", "==", lambda s: (s.m_new, s.m), at=dict(b2="1"))
F(S, "b2-zero-freezes", "b2 = 0: m_new = g", "p g m t", "==", lambda s: (s.m_new, s.m),
  at=dict(b2="0"), witness=dict(p="0", g="1", m="0", t="1"))
T(S, "momentum-bounded", "convex combination", "p g m t G", "<=", lambda s: (s.m_new, s.G),
  given=lambda s: [(s.m, "<=", s.G), (s.g, "<=", s.G)])
T(S, "momentum-bounded-any-b2", "convex combination, b2 in [0, 1]", "p g m t G b2", "<=",
  lambda s: (s.m_new, s.G), given=lambda s: [(s.m, "<=", s.G), (s.g, "<=", s.G), (s.b2, ">=", 0)])
T(S, "momentum-abs-bounded", "triangle inequality on a convex combination", "p g m t G", "<=",
  lambda s: (abs(s.m_new), s.G), given=lambda s: [(abs(s.m), "<=", s.G), (abs(s.g), "<=", s.G)])
T(S, "b1-zero-as-signsgd", "b1 = 0: c = g", "p g1 g2 g3 lr", "equiv",
  _equiv(lambda s: run_lion(s.p, [s.g1, s.g2, s.g3], s.lr, 0, num("99/100")),
         lambda s: run_signsgd(s.p, [s.g1, s.g2, s.g3], s.lr)), at=dict(b1="0"))
F(S, "b1-one-as-signsgd", "b1 = 1: the first step reads m = 0 and does not move", "p g1 g2 lr",
  "equiv", _equiv(lambda s: run_lion(s.p, [s.g1, s.g2], s.lr, 1, num("99/100")),
                  lambda s: run_signsgd(s.p, [s.g1, s.g2], s.lr)),
  at=dict(b1="1"), witness=dict(p="0", g1="1", g2="0", lr="1"))
T(S, "b1-zero-b2-one-as-signsgd", "b1 = 0: c = g whatever m does", "p g1 g2 lr", "equiv",
  _equiv(lambda s: run_lion(s.p, [s.g1, s.g2], s.lr, 0, 1),
         lambda s: run_signsgd(s.p, [s.g1, s.g2], s.lr)), at=dict(b1="0", b2="1"))

# exp_sched.opt: lr = base_lr*gamma^t, t >= 0; base_lr = 1/10 in [0, oo), gamma = 9/10 in [0, 1]
S = "exp_sched.opt"
T(S, "t-nonnegative", "a schedule's t starts at 0", "t", ">=", lambda s: (s.t, 0))
F(S, "t-positive", "t = 0 is a schedule step", "t", ">=", lambda s: (s.t, 1), witness=dict(t="0"))
T(S, "power-at-most-one", "gamma in [0, 1] (0^0 = 1)", "t gamma", "<=",
  lambda s: (ipow(s.gamma, s.t), 1))
F(S, "power-below-one", "t = 0: gamma^0 = 1", "t gamma", "<", lambda s: (ipow(s.gamma, s.t), 1),
  witness=dict(t="0", gamma="1/2"))
F(S, "power-below-one-later", "gamma = 1 (closed end)", "t gamma", "<",
  lambda s: (ipow(s.gamma, s.t), 1), given=lambda s: [(s.t, ">=", 1)],
  witness=dict(t="1", gamma="1"))
T(S, "power-below-one-given-gamma", "0 <= gamma < 1, t >= 1", "t gamma", "<",
  lambda s: (ipow(s.gamma, s.t), 1), given=lambda s: [(s.t, ">=", 1), (s.gamma, "<", 1)])
T(S, "power-below-one-given-flipped", "1 > gamma is gamma < 1", "t gamma", "<",
  lambda s: (ipow(s.gamma, s.t), 1), given=lambda s: [(s.t, ">=", 1), (1, ">", s.gamma)])
T(S, "power-below-one-given-square", "gamma >= 0 and gamma^2 < 1 give gamma < 1", "t gamma", "<",
  lambda s: (ipow(s.gamma, s.t), 1), given=lambda s: [(s.t, ">=", 1), (s.gamma ** 2, "<", 1)])
T(S, "power-nonnegative", "gamma >= 0", "t gamma", ">=", lambda s: (ipow(s.gamma, s.t), 0))
F(S, "power-positive", "gamma = 0, t = 1", "t gamma", ">", lambda s: (ipow(s.gamma, s.t), 0),
  witness=dict(t="1", gamma="0"))
T(S, "at-most-base", "(9/10)^t <= 1", "t base_lr", "<=", lambda s: (s.lr, s.base_lr))
T(S, "at-most-base-any-gamma", "gamma^t <= 1, base_lr >= 0", "t base_lr gamma", "<=",
  lambda s: (s.lr, s.base_lr), given=lambda s: [(s.gamma, ">=", 0)])
F(S, "below-base", "t = 0", "t base_lr gamma", "<", lambda s: (s.lr, s.base_lr),
  given=lambda s: [(1, ">", s.gamma), (s.base_lr, ">", 0)],
  witness=dict(t="0", base_lr="1", gamma="1/2"))
T(S, "below-base-later", "gamma^t < 1 for t >= 1, gamma < 1", "t base_lr gamma", "<",
  lambda s: (s.lr, s.base_lr), given=lambda s: [(s.t, ">=", 1), (1, ">", s.gamma), (s.base_lr, ">", 0)])
T(S, "nonnegative", "1/10*(9/10)^t", "t", ">=", lambda s: (s.lr, 0))
T(S, "starts-at-base", "gamma^0 = 1", "base_lr", "==", lambda s: (s.lr, s.base_lr), at=dict(t="0"))
T(S, "starts-at-base-gamma-zero", "0^0 = 1", "base_lr", "==", lambda s: (s.lr, s.base_lr),
  at=dict(t="0", gamma="0"))
F(S, "gamma-zero-is-zero", "t = 0: 0^0 = 1", "t", "==", lambda s: (s.lr, 0), at=dict(gamma="0"),
  witness=dict(t="0"))
T(S, "gamma-zero-is-zero-later", "0^t = 0 for t >= 1", "t", "==", lambda s: (s.lr, 0),
  at=dict(gamma="0"), given=lambda s: [(s.t, ">=", 1)])
T(S, "gamma-one-is-constant", "1^t = 1", "t base_lr", "==", lambda s: (s.lr, s.base_lr),
  at=dict(gamma="1"))
T(S, "third-step", "t = 3", "base_lr gamma", "==", lambda s: (s.lr, s.base_lr * s.gamma ** 3),
  at=dict(t="3"))
F(S, "third-step-wrong", "gamma^3 != gamma^2 at gamma = 1/2", "base_lr gamma", "==",
  lambda s: (s.lr, s.base_lr * s.gamma ** 2), at=dict(t="3"), witness=dict(base_lr="1", gamma="1/2"))
T(S, "nonincreasing", "gamma^(t+1) = gamma*gamma^t <= gamma^t", "t base_lr gamma", "<=",
  lambda s: (s.base_lr * ipow(s.gamma, s.t + 1), s.lr))
F(S, "decreasing", "gamma = 1 (or base_lr = 0)", "t base_lr gamma", "<",
  lambda s: (s.base_lr * ipow(s.gamma, s.t + 1), s.lr), witness=dict(t="0", base_lr="1", gamma="1"))
T(S, "decreasing-inside", "base_lr*gamma^t*(1 - gamma) > 0 for gamma in (0, 1)",
  "t base_lr gamma", "<", lambda s: (s.base_lr * ipow(s.gamma, s.t + 1), s.lr),
  given=lambda s: [(s.base_lr, ">", 0), (s.gamma, ">", 0), (1, ">", s.gamma)])
T(S, "limit-zero", "gamma^t -> 0 for gamma in [0, 1)", "gamma", "==", lambda s: (s.lr, 0),
  given=lambda s: [(s.gamma, "<", 1)], limit=lambda s: 0)
F(S, "limit-zero-any-gamma", "gamma = 1: the limit is base_lr = 1/10", "gamma", "==",
  lambda s: (s.lr, 0), given=lambda s: [(s.gamma, "<=", 1)],
  limit=lambda s: num("1/10") if s.gamma == 1 else 0, witness=dict(gamma="1"))
T(S, "limit-zero-default", "(9/10)^t -> 0", "", "==", lambda s: (s.lr, 0), limit=lambda s: 0)
F(S, "limit-positive", "the limit is 0, not > 0", "gamma", ">", lambda s: (s.lr, 0),
  given=lambda s: [(s.gamma, "<", 1)], limit=lambda s: 0, witness=dict(gamma="1/2"))
T(S, "limit-nonnegative", "the limit 0 is >= 0", "", ">=", lambda s: (s.lr, 0), limit=lambda s: 0)
T(S, "limit-nonpositive", "the limit 0 is <= 0", "gamma", "<=", lambda s: (s.lr, 0),
  given=lambda s: [(s.gamma, "<", 1)], limit=lambda s: 0)
T(S, "limit-below-base", "lim (lr - base_lr) = -base_lr < 0", "gamma base_lr", "<",
  lambda s: (s.lr, s.base_lr), given=lambda s: [(s.gamma, "<", 1), (s.base_lr, ">", 0)],
  limit=lambda s: -s.base_lr)
F(S, "limit-below-base-any-gamma", "gamma = 1: the limit of lr - base_lr is 0", "gamma base_lr",
  "<", lambda s: (s.lr, s.base_lr), given=lambda s: [(s.base_lr, ">", 0), (s.gamma, "<=", 1)],
  limit=lambda s: 0 if s.gamma == 1 else -s.base_lr, witness=dict(gamma="1", base_lr="1"))
T(S, "limit-at-most-base", "the limit of lr - base_lr is 0 or -base_lr", "gamma base_lr", "<=",
  lambda s: (s.lr, s.base_lr), given=lambda s: [(s.gamma, "<=", 1)],
  limit=lambda s: 0 if s.gamma == 1 else -s.base_lr)
T(S, "limit-at-gamma-one", "constant", "base_lr", "==", lambda s: (s.lr, s.base_lr),
  at=dict(gamma="1"), limit=lambda s: 0)
T(S, "limit-t-unbounded", "t - base_lr -> +oo, an infinite limit that is > 0", "base_lr", ">",
  lambda s: (s.t, s.base_lr), limit=lambda s: mp.inf)
F(S, "limit-t-below-base", "base_lr - t -> -oo", "base_lr", ">", lambda s: (s.base_lr, s.t),
  limit=lambda s: -mp.inf, witness=dict(base_lr="1"))

# cos_sched.opt: lr = base_lr*(1 + cos(pi*t/T))/2, t >= 0; base_lr = 1/10, T = 100 (int >= 1)
S = "cos_sched.opt"
T(S, "nonnegative", "1 + cos >= 0", "t", ">=", lambda s: (s.lr, 0))
F(S, "positive", "t = T = 100: cos(pi) = -1", "t base_lr", ">", lambda s: (s.lr, 0),
  given=lambda s: [(s.base_lr, ">", 0)], witness=dict(t="100", base_lr="1"))
T(S, "positive-before-half-period", "0 <= t/T < 1: cos(pi*t/T) > -1", "t base_lr T", ">",
  lambda s: (s.lr, 0), given=lambda s: [(s.base_lr, ">", 0), (s.t, "<", s.T)])
T(S, "at-most-base", "cos <= 1", "t base_lr", "<=", lambda s: (s.lr, s.base_lr))
F(S, "below-base", "t = 0", "t base_lr", "<", lambda s: (s.lr, s.base_lr),
  given=lambda s: [(s.base_lr, ">", 0)], witness=dict(t="0", base_lr="1"))
T(S, "below-base-first-period", "t/100 in (0, 1]: cos(pi*t/100) < 1", "t base_lr", "<",
  lambda s: (s.lr, s.base_lr),
  given=lambda s: [(s.base_lr, ">", 0), (s.t, ">=", 1), (s.t, "<=", 100)])
F(S, "below-base-after-start", "t = 200: cos(2*pi) = 1", "t base_lr", "<",
  lambda s: (s.lr, s.base_lr), given=lambda s: [(s.base_lr, ">", 0), (s.t, ">=", 1)],
  witness=dict(t="200", base_lr="1"))
T(S, "starts-at-base", "cos(0) = 1", "base_lr", "==", lambda s: (s.lr, s.base_lr), at=dict(t="0"))
T(S, "zero-at-half-period", "cos(pi) = -1", "T", "==", lambda s: (s.lr, 0),
  at=dict(t=lambda s: s.T))
F(S, "half-at-half-period", "lr(T) = 0", "T base_lr", "==", lambda s: (s.lr, s.base_lr / 2),
  at=dict(t=lambda s: s.T), witness=dict(T="1", base_lr="1"))
T(S, "back-at-full-period", "cos(2*pi) = 1", "T base_lr", "==", lambda s: (s.lr, s.base_lr),
  at=dict(t=lambda s: 2 * s.T))
T(S, "one-plus-cos", "cos >= -1", "t T", ">=", lambda s: (1 + cospi(s.t / s.T), 0))
F(S, "one-plus-cos-strict", "t = T", "t T", ">", lambda s: (1 + cospi(s.t / s.T), 0),
  witness=dict(t="1", T="1"))
T(S, "full-turns", "t is an integer", "t", "==", lambda s: (cospi(2 * s.t), 1))
F(S, "half-turns", "cos(pi) = -1", "t", "==", lambda s: (cospi(s.t), 1), witness=dict(t="1"))
T(S, "full-turns-limit", "cos(2*pi*t) = 1 at every integer t", "", "==",
  lambda s: (cospi(2 * s.t), 1), limit=lambda s: 0)
F(S, "no-limit", "lr oscillates between 0 and 1/10: no limit", "", "==", lambda s: (s.lr, 0),
  limit=lambda s: NOLIMIT, osc=lambda s: (lambda k: 200 * k, lambda k: 200 * k + 100),
  witness=dict())
F(S, "no-limit-nonnegative", "lr >= 0 everywhere, but the limit does not exist", "", ">=",
  lambda s: (s.lr, 0), limit=lambda s: NOLIMIT,
  osc=lambda s: (lambda k: 200 * k, lambda k: 200 * k + 100), witness=dict())
T(S, "decreasing-first-half", "cos decreases on [0, pi]", "t base_lr T", "<=",
  lambda s: (s.base_lr * (1 + cospi((s.t + 1) / s.T)) / 2, s.lr),
  given=lambda s: [(s.t + 1, "<=", s.T)])
F(S, "decreasing-always", "T = 1, t = 1: from 0 back up to base_lr", "t base_lr T", "<=",
  lambda s: (s.base_lr * (1 + cospi((s.t + 1) / s.T)) / 2, s.lr),
  witness=dict(t="1", base_lr="1", T="1"))

# linear_sched.opt: lr = base_lr*(start + (1 - start)*min(t, n)/n); base_lr = 1/10,
# start = 1/4 in [0, 1], n = 10 (int >= 1)
S = "linear_sched.opt"
T(S, "at-most-base", "factor 1/4 + 3/4*min(t, 10)/10 <= 1", "t base_lr", "<=",
  lambda s: (s.lr, s.base_lr))
T(S, "at-least-start", "(1 - start)*min(t, n)/n >= 0", "t base_lr start", ">=",
  lambda s: (s.lr, s.base_lr * s.start))
F(S, "above-start", "t = 0", "t base_lr start", ">", lambda s: (s.lr, s.base_lr * s.start),
  given=lambda s: [(s.base_lr, ">", 0)], witness=dict(t="0", base_lr="1", start="1/2"))
F(S, "above-start-later", "start is mentioned, so free: start = 1 is flat", "t base_lr start",
  ">", lambda s: (s.lr, s.base_lr * s.start), given=lambda s: [(s.base_lr, ">", 0), (s.t, ">=", 1)],
  witness=dict(t="1", base_lr="1", start="1"))
T(S, "above-start-later-start-below-one", "(1 - start) > 0 and min(t, n) >= 1",
  "t base_lr start", ">", lambda s: (s.lr, s.base_lr * s.start),
  given=lambda s: [(s.base_lr, ">", 0), (s.t, ">=", 1), (s.start, "<", 1)])
F(S, "above-start-later-any-start", "start = 1", "t base_lr start", ">",
  lambda s: (s.lr, s.base_lr * s.start),
  given=lambda s: [(s.base_lr, ">", 0), (s.t, ">=", 1), (s.start, ">=", 0)],
  witness=dict(t="1", base_lr="1", start="1"))
T(S, "reaches-base", "min(n, n)/n = 1", "base_lr n", "==", lambda s: (s.lr, s.base_lr),
  at=dict(t=lambda s: s.n))
T(S, "stays-at-base", "min(t, n) = n", "t base_lr n", "==", lambda s: (s.lr, s.base_lr),
  given=lambda s: [(s.t, ">=", s.n)])
F(S, "stays-at-base-early", "n = 2, t = 1: factor 5/8", "t base_lr n", "==",
  lambda s: (s.lr, s.base_lr), given=lambda s: [(s.t, ">=", s.n - 1)],
  witness=dict(t="1", base_lr="1", n="2"))
T(S, "starts-at-start", "min(0, n) = 0", "base_lr start", "==",
  lambda s: (s.lr, s.base_lr * s.start), at=dict(t="0"))
T(S, "start-one-is-constant", "factor 1", "t base_lr", "==", lambda s: (s.lr, s.base_lr),
  at=dict(start="1"))
T(S, "limit-base", "constant from t = n on", "base_lr", "==", lambda s: (s.lr, s.base_lr),
  limit=lambda s: 0)
F(S, "limit-above-start", "start and base_lr are free: start = 1 gives a limit of 0",
  "base_lr start", ">", lambda s: (s.lr, s.base_lr * s.start),
  limit=lambda s: s.base_lr * (1 - s.start), witness=dict(base_lr="1", start="1"))
T(S, "limit-above-start-inside", "the limit base_lr*(1 - start) > 0", "base_lr start", ">",
  lambda s: (s.lr, s.base_lr * s.start),
  given=lambda s: [(s.start, "<", 1), (s.base_lr, ">", 0)],
  limit=lambda s: s.base_lr * (1 - s.start))
T(S, "limit-above-start-nonstrict", "the limit base_lr*(1 - start) >= 0", "base_lr start", ">=",
  lambda s: (s.lr, s.base_lr * s.start), given=lambda s: [(s.start, "<=", 1)],
  limit=lambda s: s.base_lr * (1 - s.start))
F(S, "limit-below-base", "the limit of lr - base_lr is 0, not < 0", "base_lr", "<",
  lambda s: (s.lr, s.base_lr), limit=lambda s: 0, witness=dict(base_lr="1"))
T(S, "nondecreasing", "min(t + 1, n) >= min(t, n), 1 - start >= 0", "t base_lr start n", ">=",
  lambda s: (s.base_lr * (s.start + (1 - s.start) * min(s.t + 1, s.n) / s.n), s.lr))
F(S, "increasing", "flat after the ramp", "t base_lr start n", ">",
  lambda s: (s.base_lr * (s.start + (1 - s.start) * min(s.t + 1, s.n) / s.n), s.lr),
  given=lambda s: [(s.base_lr, ">", 0)], witness=dict(t="1", base_lr="1", start="0", n="1"))
F(S, "increasing-during-ramp", "start is free: start = 1 is flat", "t base_lr start n", ">",
  lambda s: (s.base_lr * (s.start + (1 - s.start) * min(s.t + 1, s.n) / s.n), s.lr),
  given=lambda s: [(s.base_lr, ">", 0), (s.t, "<", s.n)],
  witness=dict(t="0", base_lr="1", start="1", n="1"))
T(S, "increasing-during-ramp-start-below-one", "t < n: min(t + 1, n) = t + 1 > t",
  "t base_lr start n", ">",
  lambda s: (s.base_lr * (s.start + (1 - s.start) * min(s.t + 1, s.n) / s.n), s.lr),
  given=lambda s: [(s.base_lr, ">", 0), (s.t, "<", s.n), (s.start, "<", 1)])

# step_sched.opt: lr = base_lr*gamma^floor(t/k); base_lr = 1/10, gamma = 1/2 in [0, 1],
# k = 10 (int >= 1)
S = "step_sched.opt"
T(S, "at-most-base", "(1/2)^n <= 1", "t base_lr", "<=", lambda s: (s.lr, s.base_lr))
T(S, "nonnegative", "1/10*(1/2)^n", "t", ">=", lambda s: (s.lr, 0))
T(S, "first-period", "0 <= t < k: floor(t/k) = 0", "t base_lr k", "==", lambda s: (s.lr, s.base_lr),
  given=lambda s: [(s.t, "<", s.k)])
F(S, "first-period-off-by-one", "t = k decays", "t base_lr k", "==", lambda s: (s.lr, s.base_lr),
  given=lambda s: [(s.t, "<=", s.k)], witness=dict(t="1", base_lr="1", k="1"))
T(S, "first-decay", "floor(k/k) = 1", "base_lr gamma k", "==",
  lambda s: (s.lr, s.base_lr * s.gamma), at=dict(t=lambda s: s.k))
T(S, "end-of-second-period", "floor((2k - 1)/k) = 1", "base_lr gamma k", "==",
  lambda s: (s.lr, s.base_lr * s.gamma), at=dict(t=lambda s: 2 * s.k - 1))
F(S, "end-of-second-period-wrong", "gamma^1, not gamma^2", "base_lr gamma k", "==",
  lambda s: (s.lr, s.base_lr * s.gamma ** 2), at=dict(t=lambda s: 2 * s.k - 1),
  witness=dict(base_lr="1", gamma="1/2", k="1"))
T(S, "limit-zero", "gamma^floor(t/10) -> 0 for gamma in [0, 1)", "gamma", "==",
  lambda s: (s.lr, 0), given=lambda s: [(s.gamma, "<", 1)], limit=lambda s: 0)
F(S, "gamma-zero-is-zero", "t = 0: 0^0 = 1", "t", "==", lambda s: (s.lr, 0), at=dict(gamma="0"),
  witness=dict(t="0"))
T(S, "gamma-zero-is-zero-later", "t >= k: floor(t/k) >= 1, 0^n = 0", "t k", "==",
  lambda s: (s.lr, 0), at=dict(gamma="0"), given=lambda s: [(s.t, ">=", s.k)])
T(S, "gamma-one-is-constant", "1^n = 1", "t base_lr", "==", lambda s: (s.lr, s.base_lr),
  at=dict(gamma="1"))
F(S, "positive", "gamma = 0 (closed end) after the first period", "t base_lr gamma", ">",
  lambda s: (s.lr, 0), given=lambda s: [(s.base_lr, ">", 0), (s.gamma, ">=", 0)],
  witness=dict(t="10", base_lr="1", gamma="0"))
T(S, "positive-default-gamma", "(1/2)^n > 0", "t base_lr", ">", lambda s: (s.lr, 0),
  given=lambda s: [(s.base_lr, ">", 0)])

# warmup_sched.opt: lr = t < warmup ? base_lr*t/warmup : base_lr*(total - min(t, total))/(total -
# warmup); base_lr = 1/10, warmup = 10 (int >= 1), total = 100 (int >= 2), require warmup < total
S = "warmup_sched.opt"
T(S, "nonnegative", "both pieces >= 0 (warmup = 10 < total = 100)", "t", ">=",
  lambda s: (s.lr, 0))
T(S, "at-most-base", "t/warmup < 1 before, (total - t)/(total - warmup) <= 1 after", "t base_lr",
  "<=", lambda s: (s.lr, s.base_lr))
T(S, "nonnegative-any-bounds", "require warmup < total keeps the denominator positive",
  "t warmup total", ">=", lambda s: (s.lr, 0),
  given=lambda s: [(s.warmup, ">=", 1), (s.total, ">=", 2)])
T(S, "at-most-base-any-bounds", "require warmup < total", "t base_lr warmup total", "<=",
  lambda s: (s.lr, s.base_lr), given=lambda s: [(s.warmup, ">=", 1), (s.total, ">=", 2)])
T(S, "peak", "t = warmup takes the decay piece at its start", "base_lr warmup", "==",
  lambda s: (s.lr, s.base_lr), at=dict(t=lambda s: s.warmup))
T(S, "starts-at-zero", "t = 0 < warmup", "", "==", lambda s: (s.lr, 0), at=dict(t="0"))
F(S, "positive", "t = 0", "t base_lr", ">", lambda s: (s.lr, 0),
  given=lambda s: [(s.base_lr, ">", 0)], witness=dict(t="0", base_lr="1"))
F(S, "positive-later", "t >= total gives 0", "t base_lr", ">", lambda s: (s.lr, 0),
  given=lambda s: [(s.base_lr, ">", 0), (s.t, ">=", 1)], witness=dict(t="100", base_lr="1"))
T(S, "positive-before-total", "1 <= t < total: both pieces positive", "t base_lr total", ">",
  lambda s: (s.lr, 0), given=lambda s: [(s.base_lr, ">", 0), (s.t, ">=", 1), (s.t, "<", s.total)])
T(S, "ends", "t >= total > warmup: total - min(t, total) = 0", "t total", "==",
  lambda s: (s.lr, 0), given=lambda s: [(s.t, ">=", s.total)])
T(S, "ends-at-total", "total - total = 0", "total", "==", lambda s: (s.lr, 0),
  at=dict(t=lambda s: s.total))
T(S, "limit-zero", "0 from t = total on", "", "==", lambda s: (s.lr, 0), limit=lambda s: 0)
F(S, "limit-positive", "the limit is 0, not > 0", "", ">", lambda s: (s.lr, 0),
  limit=lambda s: 0, witness=dict())
F(S, "before-peak", "warmup = 2: lr(1) = base_lr/2", "base_lr warmup", "==",
  lambda s: (s.lr, s.base_lr), at=dict(t=lambda s: s.warmup - 1),
  witness=dict(base_lr="1", warmup="2"))
F(S, "ramp-past-warmup", "t = warmup + 1 is on the decay", "t base_lr warmup", "==",
  lambda s: (s.lr, s.base_lr * s.t / s.warmup), given=lambda s: [(s.t, "<=", s.warmup + 1)],
  witness=dict(t="11", base_lr="1", warmup="10"))
T(S, "ramp", "t = warmup: base_lr*(total - warmup)/(total - warmup) = base_lr*warmup/warmup",
  "t base_lr warmup", "==", lambda s: (s.lr, s.base_lr * s.t / s.warmup),
  given=lambda s: [(s.t, "<=", s.warmup)])
T(S, "warmup-below-total", "integers with warmup < total", "t warmup total", ">=",
  lambda s: (s.total - s.warmup, 1))
F(S, "warmup-well-below-total", "warmup = 1, total = 2", "t warmup total", ">=",
  lambda s: (s.total - s.warmup, 2), witness=dict(t="0", warmup="1", total="2"))

del S


# --- evaluation -------------------------------------------------------------------------------

BY_KEY: dict[tuple[str, str], Claim] = {c.key: c for c in CLAIMS}


def spec_claim_ids(path: Path) -> list[str]:
    """The ids of the ``claim`` lines in a spec file, in order."""
    return [line.split(":", 1)[0].split()[1] for line in path.read_text().splitlines()
            if line.startswith("claim ")]


def spec_files() -> list[Path]:
    return sorted(HERE.glob("*.opt"))


def point(c: Claim, values: dict[str, Fraction]) -> Point:
    """The point for free values ``values``: spec defaults, then the free values, then pins."""
    sp_ = SPECS[c.spec]
    out = {name: num(default) for name, (default, _) in sp_.hypers.items()}
    out.update({name: num(value) for name, value in values.items()})
    s = Point(out, sp_.model)
    for name, pin in c.at.items():
        s[name] = pin(s) if callable(pin) else num(pin)
    return s


def conditions(c: Claim, s: Point) -> list[tuple]:
    """The claim's givens and the spec's require lines at ``s``, as (lhs, op, rhs)."""
    out = list(c.given(s)) if c.given else []
    if SPECS[c.spec].require:
        out += SPECS[c.spec].require(s)
    return out


#: The signs a difference lhs - rhs may have for ``lhs op rhs`` to hold (0: a tie).
_SIGNS = {"==": {0}, "!=": {-1, 1}, "<=": {-1, 0}, "<": {-1}, ">=": {0, 1}, ">": {1}}


def _sign(low, high) -> int:
    """The sign of a difference computed at two precisions: 0 (a tie) where the value is no
    larger than its own rounding error, estimated as the change between the precisions (an
    exact tie computes to noise at both, a true difference to the same value at both)."""
    if abs(high) <= 100 * abs(high - low):
        return 0
    return 1 if high > 0 else -1


def _differences(c: Claim, values: dict[str, Fraction], dps: int):
    """At ``dps`` digits: the givens' and require's (op, lhs - rhs), None where one is undefined;
    and the claim's: [(op, lhs - rhs)] per compared pair, "undefined" where both sides are,
    "one-sided" where only one side of an equivalence is (a violation)."""
    with mp.workdps(dps):
        s = point(c, values)
        try:
            conds = [(op, mp.mpf(lhs) - mp.mpf(rhs)) for lhs, op, rhs in conditions(c, s)]
        except (Undefined, ZeroDivisionError):
            conds = None
        try:
            if c.is_limit:
                value = c.limit(s)
                claim = value if isinstance(value, str) else mp.mpf(value)
            elif c.rel == "equiv":
                results = []
                for thunk in c.f(s):
                    try:
                        results.append(thunk())
                    except (Undefined, ZeroDivisionError):
                        results.append(None)
                mine, other = results
                if mine is None or other is None:
                    claim = "undefined" if mine is None and other is None else "one-sided"
                else:
                    claim = [("==", mp.mpf(a) - mp.mpf(b)) for a, b in zip(mine, other)]
            else:
                lhs, rhs = c.f(s)
                claim = [(c.rel, mp.mpf(lhs) - mp.mpf(rhs))]
        except (Undefined, ZeroDivisionError):
            claim = "undefined"
    return conds, claim


def limit_violated(op: str, value) -> bool:
    """Whether a limit value breaks ``lim (a - b) op 0`` (NOLIMIT: the limit does not exist)."""
    if isinstance(value, str):
        return True
    if mp.isinf(value):
        return not ((value > 0 and op in (">", ">=")) or (value < 0 and op in ("<", "<=")))
    return (0 if value == 0 else 1 if value > 0 else -1) not in _SIGNS[op]


def judge(c: Claim, values: dict[str, Fraction], dps: int = 50) -> tuple[bool | None, bool | None]:
    """(whether exact ``values`` meet every domain, given and require; whether the claim fails
    there), at ``dps`` digits with the rounding error estimated at twice that; None where
    undefined. A limit claim is judged by its hand-derived limit value."""
    if not all(c.domain(name).contains(Fraction(v)) for name, v in values.items()):
        return False, None
    conds_lo, claim_lo = _differences(c, values, dps)
    conds_hi, claim_hi = _differences(c, values, 2 * dps)
    if conds_lo is None or conds_hi is None:
        return None, None
    ok = all(_sign(lo, hi) in _SIGNS[op] for (op, lo), (_, hi) in zip(conds_lo, conds_hi))
    if c.is_limit:
        return ok, limit_violated(c.rel, claim_hi)
    if claim_hi == "undefined" or claim_lo == "undefined":
        return ok, None
    if claim_hi == "one-sided":
        return ok, True
    return ok, any(_sign(lo, hi) not in _SIGNS[op]
                   for (op, lo), (_, hi) in zip(claim_lo, claim_hi))


def admissible(c: Claim, values: dict[str, Fraction], dps: int = 50) -> bool | None:
    return judge(c, values, dps)[0]


def claim_violated(c: Claim, values: dict[str, Fraction], dps: int = 50) -> bool | None:
    return judge(c, values, dps)[1]


def difference_at(c: Claim, values: dict[str, Fraction], t) -> mp.mpf:
    """lhs - rhs of a limit claim at step ``t``."""
    s = point(c, values)
    s["t"] = mp.mpf(t)
    lhs, rhs = c.f(s)
    return mp.mpf(lhs) - mp.mpf(rhs)


def limit_consistent(c: Claim, values: dict[str, Fraction]) -> str | None:
    """None if the hand-derived limit matches the transcription at large t, else why not."""
    s = point(c, values)
    expected = c.limit(s)
    if isinstance(expected, str):
        first, second = c.osc(s)
        for k in (10**3, 10**6, 10**9):
            a, b = difference_at(c, values, first(k)), difference_at(c, values, second(k))
            if abs(a - b) < mp.mpf("1e-6"):
                return f"no oscillation at k = {k}: {a} vs {b}"
        return None
    expected = mp.mpf(expected)
    late = difference_at(c, values, 10**12)
    if mp.isinf(expected):
        if not (abs(late) > 10**6 and mp.sign(late) == mp.sign(expected)):
            return f"expected {expected}, the difference at t = 1e12 is {late}"
        return None
    if abs(late - expected) > mp.mpf("1e-6") * (1 + abs(expected)):
        return f"expected {expected}, the difference at t = 1e12 is {late}"
    return None


def witness_values(c: Claim) -> dict[str, Fraction]:
    return {name: Fraction(value) for name, value in (c.witness or {}).items()}


def check_witness(c: Claim) -> str | None:
    """None if the witness breaks the claim's universal statement (at 50 digits: for a false
    claim, the claim; for a true ``not equivalent``, the equivalence), else what is wrong."""
    if c.witness is None:
        return "a claim whose universal statement fails needs a witness"
    values = witness_values(c)
    if set(values) != set(c.free):
        return f"the witness names {sorted(values)}, the free variables are {sorted(c.free)}"
    ok, bad = judge(c, values, 50)
    if not ok:
        return "the witness is outside a domain, a given or a require condition"
    if c.is_limit:
        with mp.workdps(50):
            problem = limit_consistent(c, values)
        if problem:
            return problem
    if bad is not True:
        return "the claim holds (or is undefined) at the witness"
    return None


def sample_points(c: Claim, count: int, seed: int = 0):
    """Exact free values: the domains' edges first (cycled, shifted per variable), then random
    mixes of edges and random values."""
    rng = random.Random(f"{c.spec}:{c.id}:{seed}")
    names = list(c.free)
    doms = [c.domain(n) for n in names]
    edges = [d.edges(limit_safe=c.is_limit) for d in doms]
    if not names:
        yield {}
        return
    longest = max(len(e) for e in edges)
    for i in range(count):
        values = {}
        for j, (name, d, e) in enumerate(zip(names, doms, edges)):
            if i < 2 * longest:
                values[name] = e[(i * (j + 1) + j) % len(e)]
            elif rng.random() < 0.2 and d.contains(Fraction(0)):
                values[name] = Fraction(0)  # often a given's equation (g == 0)
            elif rng.random() < 0.6:
                values[name] = rng.choice(e)
            else:
                values[name] = d.random(rng)
        yield values


def check_samples(c: Claim, count: int = 400) -> tuple[int, str | None]:
    """For a claim whose universal statement holds (a true claim; a false ``not equivalent``):
    (admissible points tried, the first violation found or None)."""
    accepted = 0
    for values in sample_points(c, count if not c.is_limit else count // 4):
        ok, bad = judge(c, values, 100)
        if ok is not True or bad is None:
            continue
        if c.is_limit:
            with mp.workdps(100):
                problem = limit_consistent(c, values)
            if problem:
                return accepted, f"at {values}: {problem}"
        accepted += 1
        if bad:
            return accepted, f"violated at {values}"
    return accepted, None


def counterexample_values(c: Claim, counterexample: dict[str, str]) -> tuple[dict, list[str]]:
    """A verifier's counterexample as free values (a variable it leaves out takes 1, as the
    verifier's own re-check does), and the names it gives that are not free variables."""
    extra = [name for name in counterexample if name not in c.free]
    values = {name: Fraction(counterexample.get(name, "1")) for name in c.free}
    return values, extra
