"""Stage 2, check: :class:`SpecAST` -> :class:`CheckedSpec`.

Resolves every name to a kind (hyperparameter, step, input, state, temporary), types every
expression (number or bool; host or per element), merges ``extends``, and rejects what cannot
mean anything: undefined names, assignment to a hyperparameter, unknown functions, defaults of
the wrong type or outside their domain, duplicate definitions, use before definition. Errors are
collected and reported together, each with its span.
"""

from __future__ import annotations

import contextlib
import difflib
import keyword
from typing import Callable

from . import bounds
from . import nodes as n
from .errors import SpecError, SpecErrors
from .functions import FUNCTIONS
from .claims_builtin import BUILTIN_CLAIM_IDS
from .names import MAX_NAME_LENGTH
from .ir import Claim, CheckedSpec, Hyper, Interval, Kind, Level, Require, State, Statement, Symbol, Type

#: Names every spec has: the parameter, its gradient and the 1-based step.
BUILTIN_SYMBOLS = {
    "p": Symbol("p", Kind.INPUT, Type.NUMBER, Level.ELEMENT),
    "g": Symbol("g", Kind.INPUT, Type.NUMBER, Level.ELEMENT),
    "t": Symbol("t", Kind.STEP, Type.NUMBER, Level.HOST),
    "pi": Symbol("pi", Kind.CONSTANT, Type.NUMBER, Level.HOST),
    "rows": Symbol("rows", Kind.CONSTANT, Type.NUMBER, Level.TENSOR),
    "cols": Symbol("cols", Kind.CONSTANT, Type.NUMBER, Level.TENSOR),
    # Per tensor, known before the step: the parameter has >= 2 dimensions (factored states
    # exist), and the machine epsilon of its dtype.
    "factored": Symbol("factored", Kind.CONSTANT, Type.BOOL, Level.HOST),
    "epsilon": Symbol("epsilon", Kind.CONSTANT, Type.NUMBER, Level.HOST),
    "ndim": Symbol("ndim", Kind.CONSTANT, Type.NUMBER, Level.HOST),
    # the element count, known per tensor (of the whole tensor where it is sharded)
    "numel": Symbol("numel", Kind.CONSTANT, Type.NUMBER, Level.TENSOR),
    # elements per channel: of every dimension but the first (1 for a 0-d tensor)
    "channel_size": Symbol("channel_size", Kind.CONSTANT, Type.NUMBER, Level.TENSOR),
}
# Function names are not reserved: `sum(x)` is a call and `sum` a name (Adagrad's state).
# Nor are the generated code's own names (`range`, `numpy`, `cuda`, `h0`): spec names are
# printed into code in a namespace of their own (see names.py).
RESERVED = set(BUILTIN_SYMBOLS) | {"inf", "true", "false", "none"}
#: Host values known only once the step has a tensor in hand (its dimensions, its dtype): the
#: host functions of the step's passes take them, but not state_inits or scalar_updates.
TENSOR_HOST_VALUES = frozenset({"factored", "epsilon", "ndim"})
#: The built-in names that belong to the tensor a step is for (not to a schedule's t).
TENSOR_NAMES = frozenset({"rows", "cols", "numel", "channel_size", "factored", "epsilon",
                          "ndim"})
#: How error messages name a value's level.
_LEVEL_WORDS = {Level.HOST: "host", Level.GROUP: "per-group", Level.TENSOR: "per-tensor",
                Level.CHANNEL: "per-channel", Level.ELEMENT: "per-element"}
#: Keys torch.optim and its schedulers keep in a param group beside the hyperparameters:
#: optgen.torch keeps per-group states there too, so they may not be named so.
PARAM_GROUP_KEYS = frozenset({"params", "initial_lr", "foreach", "fused", "capturable",
                              "differentiable", "name"})
#: The most Newton-Schulz iterations orthogonalize() may run (each is three matmuls).
MAX_MATRIX_STEPS = 100
#: Keywords that begin a line (compiler/spec.lark): a name among them could be declared but
#: never assigned, since `update = ...` reads as the start of a section.
LINE_KEYWORDS = {"optimizer", "schedule", "hyper", "state", "scalar", "input", "require",
                 "claim", "update"}

#: Arguments of the front ends' own beside the hyperparameters, which are keywords of the same
#: calls (optgen.optimizer(name_or_path, params, backend, inner, **hypers), the optimizers'
#: and schedules' constructors and set(), optgen.torch's process_group and implementation
#: flags): a hyperparameter of one of these names could never be given.
FRONT_END_ARGUMENTS = frozenset({"self", "name_or_path", "params", "backend", "inner", "module",
                                 "process_group", "foreach", "fused", "capturable",
                                 "differentiable"})
#: Keys every parameter's state has beside the spec's states (the step count).
STATE_KEYS = frozenset({"step"})

Resolver = Callable[[str], n.SpecAST]


def check(ast: n.SpecAST, resolve: Resolver | None = None) -> CheckedSpec:
    """Check one parsed spec. ``resolve(name)`` parses the spec an ``extends`` names."""
    return _Checker(ast, resolve).run()


class _Checker:
    def __init__(self, ast: n.SpecAST, resolve: Resolver | None):
        self.ast = ast
        self.resolve = resolve
        self.errors: list[SpecError] = []
        self.symbols: dict[str, Symbol] = dict(BUILTIN_SYMBOLS)
        if ast.kind == "schedule":  # a schedule is a function of t alone: no parameter
            del self.symbols["p"], self.symbols["g"]
        self.assigned_later: set[str] = set()
        self.tuples: dict[str, tuple[str, ...]] = {}
        self.claim_ids: set[str] = set()
        self.merged = ast  # with its base's declarations, once run() has merged them
        self.hyper_choices = {d.name: d.choices for d in ast.hypers if d.type == "choice"}
        self.optional: set[str] = set()   # tuple items that may be None
        self.host_extras: frozenset[str] = frozenset()  # non-hypers allowed where hypers are
        self.optional_ok = False  # typing default()'s first argument
        # names whose value (at this point of the update) is computed from per-tensor values
        self.per_tensor_names: set[str] = set()
        self.scalar_states: set[str] = set()  # states holding one value per tensor or group
        self.group_states: set[str] = set()   # those holding one value per param group
        self.tensor_scalar_names: set[str] = set()  # temporaries read from per-tensor scalars
        self.matrix_names: set[str] = set()  # names holding a matrix operation's result
        # names computed from the per-tensor host values (factored, epsilon, has_<input>)
        self.tensor_host_names: set[str] = set()
        self.costs: dict[str, bounds.Cost] = {}  # each assigned name's value, as SymPy will hold it

    def error(self, message: str, span, hint: str | None = None) -> None:
        self.errors.append(SpecError(message, span, hint=hint))

    def _measure(self, expr: n.Expr | None, env=None) -> bounds.Cost | None:
        """The expression's cost (see bounds.py); None after recording an error, where it is
        too large for the stages after this one."""
        if expr is None:
            return None
        try:
            return bounds.cost_of(expr, self.costs if env is None else env)
        except bounds.TooLarge as error:
            self.error(error.message, error.node.span)
            return None

    def run(self) -> CheckedSpec:
        self._spec_name(self.ast.name, self.ast.name_span)
        ast = self._merge_base(self.ast)
        # What the update sees is the merged spec: a base's hypers and states count
        self.merged = ast
        self.hyper_choices = {d.name: d.choices for d in ast.hypers if d.type == "choice"}
        hypers = tuple(h for h in (self._hyper(d) for d in ast.hypers) if h is not None)
        if ast.kind == "schedule":
            for decl in ast.states:
                self.error("a schedule has no state: it is a function of t", decl.span)
        inputs = tuple((d.name, d.doc or "") for d in ast.inputs if self._input(d))
        states = tuple(s for s in (self._state(d) for d in ast.states) if s is not None)
        requires = tuple(self._require(d) for d in ast.requires)
        self._counts(ast, hypers, states, inputs)
        statements = self._statements(ast.updates, ast.has_update_section)
        claims = tuple(c for c in (self._check_claim(d, hypers, states) for d in self.ast.claims)
                       if c)
        if self.errors:
            raise self.errors[0] if len(self.errors) == 1 else SpecErrors(self.errors)
        return CheckedSpec(ast.name, ast.description, ast.base, hypers, states, requires,
                           statements, dict(self.symbols), claims, ast.kind, inputs)

    # --- inheritance ----------------------------------------------------------------------

    def _merge_base(self, ast: n.SpecAST) -> n.SpecAST:
        """``optimizer b extends a``: a's declarations, with b's hypers overriding by name."""
        if ast.base is None:
            return ast
        if self.resolve is None:
            raise SpecError(f"cannot find spec {ast.base!r} to extend", ast.base_span)
        try:
            base = self.resolve(ast.base)
        except FileNotFoundError:
            raise SpecError(f"cannot find spec {ast.base!r} to extend", ast.base_span,
                            hint="the base spec must sit in the same folder or the catalogue")
        if base.base is not None:
            raise SpecError(f"{ast.base!r} itself extends {base.base!r}; extend one level only",
                            ast.base_span)
        if base.kind == "schedule":
            raise SpecError(f"{ast.base!r} is a schedule; an optimizer extends an optimizer",
                            ast.base_span)
        overrides = {h.name: h for h in ast.hypers}
        base_names = {h.name for h in base.hypers}
        hypers = []
        for h in base.hypers:
            mine = overrides.get(h.name)
            if mine is None:
                hypers.append(h)
            else:  # keep the base's type, items, domain and doc unless restated
                hypers.append(n.HyperDecl(
                    mine.span, h.name, mine.type or h.type, mine.default, mine.default_span,
                    mine.components or h.components, mine.domain or h.domain, mine.doc or h.doc))
        hypers += [h for h in ast.hypers if h.name not in base_names]
        return n.SpecAST(
            ast.name, ast.name_span, ast.base, ast.base_span, ast.description or base.description,
            tuple(hypers), base.states + ast.states, base.requires + ast.requires,
            ast.updates if ast.has_update_section else base.updates,
            ast.has_update_section or base.has_update_section, ast.claims, base.kind,
            base.inputs + ast.inputs)

    # --- declarations ---------------------------------------------------------------------

    def _claim(self, name: str, span) -> bool:
        """Whether ``name`` may be declared here (allowed, and not taken)."""
        if not self._allowed_name(name, span):
            return False
        if name in self.tuples:
            self.error(f"'{name}' is already defined as a tuple hyperparameter", span)
            return False
        if name in self.symbols:
            self.error(f"'{name}' is already defined as a {self.symbols[name].kind.value}", span)
            return False
        return True

    def _declare(self, name: str, symbol: Symbol, span) -> bool:
        if not self._claim(name, span):
            return False
        self.symbols[name] = symbol
        return True

    def _allowed_name(self, name: str, span) -> bool:
        if name in RESERVED:
            self.error(f"'{name}' is a built-in name and cannot be declared", span)
            return False
        if name in LINE_KEYWORDS:
            self.error(f"'{name}' starts a line of the spec language ('{name} ...'), so a "
                       f"statement could not assign it; choose another name", span)
            return False
        return self._python_name(name, span, "name")

    def _spec_name(self, name: str, span) -> None:
        """The spec's own name names its module (``generated/<name>.py``) and its classes."""
        self._python_name(name, span, "spec name")

    def _python_name(self, name: str, span, what: str) -> bool:
        """Names are keywords (``lr=``) and state-dict keys, and spec names module names: no
        Python keyword, nothing starting with '_' (the generated code's own namespace), and at
        most MAX_NAME_LENGTH characters."""
        if name.startswith("_") or keyword.iskeyword(name):
            self.error(f"{what} '{name}' is reserved", span,
                       hint="names may not start with '_' (the generated code's own) or be "
                            "Python keywords")
        elif len(name) > MAX_NAME_LENGTH:
            self.error(f"{what} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}",
                       span)
        else:
            return True
        return False

    def _hyper(self, decl: n.HyperDecl) -> Hyper | None:
        default, kind = decl.default, decl.type
        if decl.name in FRONT_END_ARGUMENTS:
            self.error(f"a hyperparameter named '{decl.name}' could not be given: the front "
                       f"ends take an argument '{decl.name}' of their own; choose another name",
                       decl.span)
            return None
        if kind == "choice":
            if len(set(decl.choices)) != len(decl.choices):
                self.error(f"choices of '{decl.name}' repeat", decl.span)
                return None
            if default not in decl.choices:
                self.error(f"default {default!r} of '{decl.name}' is not one of its choices "
                           f"{', '.join(map(repr, decl.choices))}", decl.default_span)
                return None
            if not self._declare(decl.name, Symbol(decl.name, Kind.HYPER, Type.CHOICE, Level.HOST),
                                 decl.span):
                return None
            return Hyper(decl.name, "choice", default, (), None, decl.doc or "", decl.span,
                         decl.choices)
        domain = None
        if decl.domain is not None:
            d = decl.domain
            domain = Interval(d.low, d.high, d.low_closed, d.high_closed)
            if d.low is not None and d.high is not None and d.low > d.high:
                self.error(f"empty domain {domain}", d.span)
                return None
        if default is None:
            inferred = "float"  # a number that may be none: read as default(name, fallback)
        elif isinstance(default, list):
            inferred = "list"
        elif isinstance(default, tuple):
            inferred = "tuple"
        elif isinstance(default, bool):
            inferred = "bool"
        else:
            inferred = "float"
        if kind is None:
            kind = inferred
        elif kind == "int" and default is None:
            self.error(f"int hyperparameter '{decl.name}' cannot default to none",
                       decl.default_span)
            return None
        elif kind == "int":
            if inferred != "float" or not float(default).is_integer():
                self.error(f"default of int hyperparameter '{decl.name}' must be an integer",
                           decl.default_span)
                return None
            default = int(default)
        elif kind != inferred:
            self.error(f"default of {kind} hyperparameter '{decl.name}' is a {inferred}",
                       decl.default_span)
            return None
        if kind == "float" and default is not None:
            default = float(default)
        if kind == "bool" and domain is not None:
            self.error(f"bool hyperparameter '{decl.name}' cannot have a domain", decl.domain.span)
        if kind == "tuple" and len(decl.components) != len(default):
            self.error(f"tuple hyperparameter '{decl.name}' needs a name for each of its "
                       f"{len(default)} items", decl.span,
                       hint=f"hyper {decl.name} = {default} as ({', '.join(f'x{i}' for i in range(len(default)))})")
            return None
        if kind != "tuple" and decl.components:
            self.error("only tuple hyperparameters name their items", decl.span)
        values = default if kind == "tuple" else (default,)
        if kind == "tuple":
            self.optional |= {c for c, v in zip(decl.components, default) if v is None}
        elif default is None:
            self.optional.add(decl.name)
        if domain is not None and kind != "list":
            for value in values:
                if value is not None and value not in domain:
                    self.error(f"default {value!r} of '{decl.name}' is outside its domain {domain}",
                               decl.default_span)
                    return None
        if kind == "list" and domain is not None:
            for value in default:
                if value not in domain:
                    self.error(f"item {value!r} of '{decl.name}' is outside its domain {domain}",
                               decl.default_span)
                    return None
        scalar_type = {"bool": Type.BOOL, "list": Type.LIST}.get(kind, Type.NUMBER)
        if kind == "tuple":
            # The tuple is the keyword users pass (betas=...); the update sees its items.
            if not self._claim(decl.name, decl.span):
                return None
            self.tuples[decl.name] = decl.components
            for item in decl.components:
                self._declare(item, Symbol(item, Kind.HYPER, Type.NUMBER, Level.HOST), decl.span)
        elif not self._declare(decl.name, Symbol(decl.name, Kind.HYPER, scalar_type, Level.HOST),
                               decl.span):
            return None
        return Hyper(decl.name, kind, default, decl.components, domain, decl.doc or "", decl.span)

    def _input(self, decl: n.InputDecl) -> bool:
        """An extra array beside g, and ``has_<name>``: whether the caller gave it this step."""
        if self.ast.kind == "schedule":
            self.error("a schedule has no inputs: it is a function of t", decl.span)
            return False
        flag = f"has_{decl.name}"
        return (self._declare(decl.name, Symbol(decl.name, Kind.INPUT, Type.NUMBER, Level.ELEMENT),
                              decl.span)
                and self._declare(flag, Symbol(flag, Kind.INPUT, Type.BOOL, Level.HOST), decl.span))

    def _state(self, decl: n.StateDecl) -> State | None:
        if decl.name in STATE_KEYS:
            self.error(f"a state named '{decl.name}' would clash with the step count every "
                       f"parameter's state keeps under that key; choose another name",
                       decl.span)
            return None
        if decl.axis is not None:
            self._expect(decl.init, Type.NUMBER, hyper_only=True,
                         what=f"a per-{decl.axis} state's initial value")
            if not (isinstance(decl.condition, n.Name) and decl.condition.id == "factored"):
                self.error(f"a per-{decl.axis} state exists only for parameters with two or more "
                           f"dimensions; declare it 'if factored'", decl.span,
                           hint=f"state {decl.name} = ... per-{decl.axis} if factored")
        elif decl.scalar:
            self._expect(decl.init, Type.NUMBER, hyper_only=True, what="a scalar's initial value")
        else:  # an element state may start from the parameter: `state z = p`
            misplaced = [name for name in _names(decl.init) if name in self.symbols
                         and name != "p" and self.symbols[name].kind not in (Kind.HYPER,
                                                                            Kind.CONSTANT)]
            per_tensor = [name for name in _names(decl.init) if name in self.symbols
                          and (self.symbols[name].level is Level.TENSOR
                               or name in TENSOR_HOST_VALUES)]
            needs_pass = [f for f in _call_names(decl.init)
                          if FUNCTIONS[f].reduction or FUNCTIONS[f].axis or FUNCTIONS[f].matrix]
            if misplaced:
                self.error(f"a state's initial value may use hyperparameters and p, not "
                           f"{self.symbols[misplaced[0]].kind.value} '{misplaced[0]}'",
                           decl.init.span)
            elif per_tensor or needs_pass:
                what = f"'{per_tensor[0]}'" if per_tensor else f"{needs_pass[0]}()"
                self.error(f"a state's initial value is set element by element from "
                           f"hyperparameters and p; {what} is known only per tensor",
                           decl.init.span)
            else:
                self._expect(decl.init, Type.NUMBER, what="a state's initial value")
        if decl.condition is not None:
            self.host_extras = frozenset({"factored"})
            self._expect(decl.condition, Type.BOOL, hyper_only=True,
                         what="a state's condition")
            self.host_extras = frozenset()
        level = Level.HOST if decl.scalar else Level.ELEMENT
        if decl.scalar:
            self.scalar_states.add(decl.name)
        if decl.group:
            self.group_states.add(decl.name)
            if decl.name in PARAM_GROUP_KEYS:
                self.error(f"a per-group state named '{decl.name}' would clash with the key "
                           "torch.optim keeps in every param group under that name; choose "
                           "another name", decl.span)
        if not self._declare(decl.name, Symbol(decl.name, Kind.STATE, Type.NUMBER, level),
                             decl.span):
            return None
        self._measure(decl.init, {})
        self._measure(decl.condition, {})
        return State(decl.name, decl.init, decl.condition, decl.span, decl.scalar, decl.axis,
                     decl.group)

    def _require(self, decl: n.RequireDecl) -> Require:
        if self._expect(decl.condition, Type.BOOL, hyper_only=True, what="a requirement"):
            self._measure(decl.condition, {})
        return Require(decl.condition, decl.message, decl.span)

    def _counts(self, ast: n.SpecAST, hypers, states, inputs) -> None:
        """How many hyperparameters and arrays (every kernel takes each array as an argument)."""
        if len(ast.hypers) > bounds.MAX_HYPERS:
            self.error(f"{len(ast.hypers)} hyperparameters; the limit is {bounds.MAX_HYPERS}",
                       ast.hypers[bounds.MAX_HYPERS].span)
        arrays = [s for s in states if not s.scalar] + list(inputs)
        if len(arrays) > bounds.MAX_ARRAYS:
            self.error(f"{len(arrays)} per-element states and inputs; the limit is "
                       f"{bounds.MAX_ARRAYS}", ast.name_span)

    # --- the update section ---------------------------------------------------------------

    def _statements(self, updates: tuple[n.Assign, ...], has_section: bool) -> tuple[Statement, ...]:
        if not has_section:
            self.error("the spec has no 'update:' section", self.ast.name_span)
            return ()
        out = []
        assigns_p = False
        if len(updates) > bounds.MAX_STATEMENTS:
            self.error(f"{len(updates)} statements in the update section; the limit is "
                       f"{bounds.MAX_STATEMENTS}", updates[bounds.MAX_STATEMENTS].span)
            return ()
        self.assigned_later = {stmt.target for stmt in updates}
        for stmt in updates:
            cond = None
            if stmt.condition is not None:
                cond = self._expect(stmt.condition, Type.BOOL, what="a statement's condition")
            target = self.symbols.get(stmt.target)
            # Temporaries may hold flags (`rising = t <= up_end`); everything else is a number.
            wanted = target.type if target is not None else self._type_quietly(stmt.value)
            value = self._expect(stmt.value, wanted or Type.NUMBER,
                                 what=f"the value of '{stmt.target}'" if target is not None
                                 and target.kind is Kind.TEMP else "an assigned value")
            if target is None:
                if not self._claim(stmt.target, stmt.target_span):
                    continue
                if stmt.condition is not None:
                    self.error(f"'{stmt.target}' is first assigned under a condition and would be "
                               f"undefined where it is false", stmt.target_span,
                               hint=f"assign '{stmt.target}' unconditionally first")
                    continue
                level = value[1] if value else Level.ELEMENT
                kind = value[0] if value else Type.NUMBER
                self.symbols[stmt.target] = Symbol(stmt.target, Kind.TEMP, kind, level)
            elif stmt.target in self.group_states and value and (
                    value[1].value > Level.GROUP.value
                    or (cond is not None and cond[1].value > Level.GROUP.value)):
                finer = value[1] if value[1].value > Level.GROUP.value else cond[1]
                self.error(f"per-group state '{stmt.target}' holds one value for the whole param "
                           f"group: assign it from hyperparameters, t, per-group states and "
                           f"group reductions (group_sum, group_norm), not from a "
                           f"{_LEVEL_WORDS[finer]} value",
                           stmt.span, hint="a sum over the group's tensors: group_sum(...)")
                continue
            elif stmt.target in self.group_states and (
                    read := self._tensor_scalar_read(stmt.value)
                    or (stmt.condition is not None and self._tensor_scalar_read(stmt.condition))):
                self.error(f"per-group state '{stmt.target}' holds one value for the whole param "
                           f"group: assign it from hyperparameters, t, per-group states and "
                           f"group reductions (group_sum, group_norm), not from a per-tensor "
                           f"value ({read})", stmt.span,
                           hint="a sum over the group's tensors: group_sum(...)")
                continue
            elif stmt.target in self.scalar_states and value and (
                    value[1].value > Level.TENSOR.value
                    or (cond is not None and cond[1].value > Level.TENSOR.value)):
                finer = value[1] if value[1].value > Level.TENSOR.value else cond[1]
                self.error(f"scalar state '{stmt.target}' holds one value per tensor: assign it "
                           f"from hyperparameters, t, scalar states and reductions (sum, norm, "
                           f"mean, rms), not from a {_LEVEL_WORDS[finer]} value", stmt.span,
                           hint=f"reduce it first, e.g. {stmt.target} = sum(...)")
                continue
            elif stmt.target in self.scalar_states and (
                    read := self._tensor_host_read(stmt.value)
                    or (stmt.condition is not None and self._tensor_host_read(stmt.condition))):
                # scalar_updates(t, hypers, scalars, sums, shape values) runs once per tensor
                # after its passes, without the per-tensor flags
                self.error(f"scalar state '{stmt.target}' is updated from hyperparameters, t, "
                           f"scalar states and reductions only, not {read}", stmt.span)
                continue
            elif target.kind in (Kind.HYPER, Kind.STEP, Kind.CONSTANT) or (
                    target.kind is Kind.INPUT and target.type is Type.BOOL):
                self.error(f"cannot assign to {target.kind.value} '{stmt.target}'", stmt.target_span,
                           hint="hyperparameters and t are read-only in the update section")
                continue
            elif target.kind is Kind.TEMP and value and value[1].value > target.level.value:
                # a temporary that became per-tensor or per-element stays so
                self.symbols[stmt.target] = Symbol(stmt.target, Kind.TEMP, target.type, value[1])
            elif stmt.target in self.scalar_states and value and (level := max(
                    value[1], cond[1] if cond is not None else Level.HOST,
                    key=lambda lv: lv.value)) is not Level.HOST:
                # a scalar state assigned from a reduction is known per tensor (or per group)
                # from here on
                self.symbols[stmt.target] = Symbol(stmt.target, Kind.STATE, Type.NUMBER, level)
            if value is not None:
                self._track(stmt, self.per_tensor_names, self._per_tensor_read)
                self._track(stmt, self.tensor_host_names, self._tensor_host_read)
                self._track(stmt, self.tensor_scalar_names, self._tensor_scalar_read)
                self._track(stmt, self.matrix_names, self._matrix_read)
            assigns_p |= stmt.target == "p"
            if value is not None and (stmt.condition is None or cond is not None):
                self._measure_assignment(stmt)
            out.append(Statement(stmt.target, stmt.value, stmt.condition, stmt.span))
        if self.ast.kind == "schedule":
            if "lr" not in self.assigned_later:
                self.error("a schedule's update section assigns lr", self.ast.name_span)
        elif not assigns_p:
            self.error("the update section never assigns 'p', so the optimizer would do nothing",
                       self.ast.name_span)
        return tuple(out)

    @staticmethod
    def _track(stmt: n.Assign, names: set[str], reads) -> None:
        """Keep ``names`` (those whose value ``reads`` something) up to date after ``stmt``: its
        target joins them when its value or condition reads such a thing, and leaves them when
        it is assigned unconditionally from a value that does not."""
        if reads(stmt.value) or (stmt.condition is not None and reads(stmt.condition)):
            names.add(stmt.target)
        elif stmt.condition is None:
            names.discard(stmt.target)

    def _matrix_read(self, expr: n.Expr) -> str | None:
        """What in ``expr`` is a matrix operation's result (orthogonalize()), or a name
        computed from one: the reduction passes run before the matrix stage."""
        for call in _call_names(expr):
            if FUNCTIONS[call].matrix:
                return f"{call}()"
        for name in _names(expr):
            if name in self.matrix_names:
                return f"'{name}'"
        return None

    def _tensor_scalar_read(self, expr: n.Expr) -> str | None:
        """What in ``expr`` is a per-tensor scalar state (or a name computed from one): a host
        value, but one per tensor, which a per-group state cannot read), outside the group
        reductions that sum it."""
        for name in _names(expr, skip=lambda call: call.startswith("group_")):
            if (name in self.scalar_states and name not in self.group_states) \
                    or name in self.tensor_scalar_names:
                return f"'{name}'"
        return None

    def _tensor_host_read(self, expr: n.Expr) -> str | None:
        """What in ``expr`` is a host value known only per tensor (``factored``, ``epsilon``,
        ``has_<input>``, or a name computed from one), or None."""
        for name in _names(expr):
            symbol = self.symbols.get(name)
            if name in TENSOR_HOST_VALUES or name in self.tensor_host_names or (
                    symbol is not None and symbol.kind is Kind.INPUT
                    and symbol.type is Type.BOOL):
                return f"'{name}'"
        return None

    def _measure_assignment(self, stmt: n.Assign) -> None:
        """What the target holds after ``stmt`` once lowering substitutes what it reads."""
        value = self._measure(stmt.value)
        condition = self._measure(stmt.condition)
        if value is None or (stmt.condition is not None and condition is None):
            return
        try:
            self.costs[stmt.target] = bounds.guarded(
                value, condition, self.costs.get(stmt.target, bounds.SYMBOL), stmt)
        except bounds.TooLarge as error:
            self.error(error.message, stmt.span)

    # --- claims ---------------------------------------------------------------------------

    def _check_claim(self, decl: n.ClaimDecl, hypers, states) -> Claim | None:
        """Names in a claim: inputs and states as before the step, ``p_new`` and ``<state>_new``
        after it, temporaries' final values, hypers, t, and variables introduced by ``given``."""
        if decl.id in BUILTIN_CLAIM_IDS or decl.id in self.claim_ids:
            self.error(f"claim id '{decl.id}' is already used", decl.span)
            return None
        self.claim_ids.add(decl.id)
        count = len(self.errors)
        table = dict(self.symbols)
        for name in ["p", *(s.name for s in states)] if "p" in table else []:
            if f"{name}_new" in table:
                self.error(f"'{name}_new' names {name} after the step in claims; rename the "
                           f"temporary", decl.span)
                return None
            table[f"{name}_new"] = Symbol(f"{name}_new", Kind.STATE, Type.NUMBER, Level.ELEMENT)
        hyper_table = {k: v for k, v in table.items() if v.kind is Kind.HYPER}
        inputs = {"p", "g", *(s.name for s in states)} & set(table)
        input_table = hyper_table | {name: table[name] for name in inputs | {"t"}}
        for binding in decl.at:  # inputs may be pinned in terms of other inputs (prev = -g)
            self._binding(binding, hypers, input_table if binding.name in inputs else
                          hyper_table | {"t": BUILTIN_SYMBOLS["t"]}, extra_targets=inputs | {"t"})
        variables = []
        for condition in decl.given:
            for name in _names(condition):
                if name not in table and name not in self.tuples and name not in variables:
                    variables.append(name)
        for name in variables:
            table[name] = Symbol(name, Kind.TEMP, Type.NUMBER, Level.ELEMENT)
        with self._scope(table):
            for condition in ((decl.relation,) if decl.relation is not None else ()) + decl.given:
                given = condition is not decl.relation
                if not isinstance(condition, n.Compare) or (condition.op == "!=" and not given):
                    self.error("a claim compares two sides with ==, <=, >=, < or >"
                               + (" (or != in a given)" if given else ""), condition.span)
                    continue
                self._type(condition, False)
        if decl.other is not None:
            self._equivalence(decl, hyper_table)
        if len(self.errors) > count:
            return None
        exprs = ([decl.relation] if decl.relation is not None else []) + list(decl.given)
        exprs += [e for b in decl.at + decl.other_bindings
                  for e in (b.value if isinstance(b.value, tuple) else (b.value,))]
        for expr in exprs:  # the verifier's SymPy computes with these numbers too
            self._measure(expr, {})
        if len(self.errors) > count:
            return None
        scalar = {name for h in hypers for name in h.scalar_names}
        pinned = {b.name for b in decl.at}
        for name in decl.free:
            if name.id not in scalar:
                self.error(f"'{name.id}' in 'for all' is not a hyperparameter of this spec",
                           name.span, hint=self._suggest(name.id, scalar))
            elif name.id in pinned:
                self.error(f"'{name.id}' is both free ('for all') and pinned ('at')", name.span)
        if len(self.errors) > count:
            return None
        mentioned = sorted(({name for e in exprs for name in _names(e)} & scalar)
                           | {name.id for name in decl.free})
        return Claim(decl, tuple(variables), tuple(mentioned))

    def _binding(self, binding: n.Binding, hypers, table, extra_targets=frozenset()):
        """``name = value``: a hyper (tuple hypers take a tuple) or one of ``extra_targets``."""
        tuple_items = {h.name: len(h.components) for h in hypers if h.type == "tuple"}
        scalars = {name for h in hypers if h.type != "tuple" for name in h.scalar_names} | \
            {name for h in hypers if h.type == "tuple" for name in h.components}
        values = binding.value if isinstance(binding.value, tuple) else (binding.value,)
        if binding.name in tuple_items:
            if len(values) != tuple_items[binding.name]:
                self.error(f"'{binding.name}' takes a tuple of {tuple_items[binding.name]}",
                           binding.span)
                return
        elif binding.name not in scalars | set(extra_targets) or isinstance(binding.value, tuple):
            self.error(f"cannot bind '{binding.name}' here", binding.span,
                       hint=self._suggest(binding.name, scalars | set(tuple_items)))
            return
        choices = next((h.choices for h in hypers if h.name == binding.name
                        and h.type == "choice"), None)
        if choices is not None:
            if not isinstance(binding.value, n.String) or binding.value.value not in choices:
                self.error(f"'{binding.name}' takes one of {', '.join(map(repr, choices))}",
                           binding.span)
            return
        with self._scope(table):
            for value in values:
                self._expect(value, Type.BOOL if self._is_flag(binding.name, hypers) else
                             Type.NUMBER, what=f"the value of '{binding.name}'")

    @staticmethod
    def _is_flag(name, hypers) -> bool:
        return any(h.name == name and h.type == "bool" for h in hypers)

    def _equivalence(self, decl: n.ClaimDecl, hyper_table) -> None:
        try:
            other = self.resolve(decl.other) if self.resolve is not None else None
        except (FileNotFoundError, SpecError):
            other = None
        if other is None:
            self.error(f"cannot find spec '{decl.other}' to compare with", decl.span)
            return
        other_checked = _Checker(other, self.resolve)
        try:  # the other side may extend a base as well (adamw is adam's)
            other = other_checked._merge_base(other)
        except SpecError:
            self.error(f"cannot find the spec '{decl.other}' extends, to compare with",
                       decl.span)
            return
        other_hypers = [h for h in (other_checked._hyper(d) for d in other.hypers) if h]
        if decl.steps < 1:
            self.error("an equivalence needs at least 1 step", decl.span)
        for binding in decl.other_bindings:
            self._binding(binding, other_hypers, hyper_table | {"t": BUILTIN_SYMBOLS["t"]})

    @contextlib.contextmanager
    def _scope(self, table: dict[str, Symbol]):
        saved, self.symbols = self.symbols, table
        try:
            yield
        finally:
            self.symbols = saved

    # --- expressions ----------------------------------------------------------------------

    def _type_quietly(self, expr: n.Expr) -> Type | None:
        """The type of ``expr`` without recording errors (they are reported when it is
        checked for real)."""
        count = len(self.errors)
        typed = self._type(expr, False)
        del self.errors[count:]
        return typed[0] if typed else None

    def _expect(self, expr: n.Expr, want: Type, *, hyper_only: bool = False, what: str):
        typed = self._type(expr, hyper_only)
        if typed is None:
            return None
        if typed[0] is not want:
            self.error(f"{what} must be a {want.value}, not a {typed[0].value}", expr.span)
            return None
        return typed

    def _type(self, expr: n.Expr, hyper_only: bool) -> tuple[Type, Level] | None:
        """(type, level) of ``expr``, or None after recording an error."""
        match expr:
            case n.Number():
                return Type.NUMBER, Level.HOST
            case n.Boolean():
                return Type.BOOL, Level.HOST
            case n.Name(id=name):
                symbol = self.symbols.get(name)
                if symbol is None:
                    if name in self.tuples:
                        self.error(f"'{name}' is a tuple; use its items "
                                   f"{', '.join(self.tuples[name])}", expr.span)
                    elif name in self.assigned_later:
                        self.error(f"'{name}' is used before it is assigned", expr.span)
                    else:
                        self.error(f"undefined name '{name}'", expr.span, hint=self._suggest(name))
                    return None
                if name in self.optional and not self.optional_ok:
                    self.error(f"'{name}' may be none; read it as default({name}, fallback)",
                               expr.span)
                    return None
                if self.ast.kind == "schedule" and name in TENSOR_NAMES:
                    self.error(f"a schedule is a function of t and its hyperparameters: "
                               f"'{name}' belongs to a tensor", expr.span)
                    return None
                if hyper_only and symbol.kind is not Kind.HYPER and name not in self.host_extras:
                    self.error(f"only hyperparameters may appear here, not {symbol.kind.value} "
                               f"'{name}'", expr.span)
                    return None
                return symbol.type, symbol.level
            case n.Call(func=func, args=args):
                spec = FUNCTIONS.get(func)
                if spec is None:
                    self.error(f"unknown function '{func}'", expr.span,
                               hint=self._suggest(func, FUNCTIONS) or
                               f"known functions: {', '.join(sorted(FUNCTIONS))}")
                    return None
                if len(args) < spec.min_args or (spec.max_args is not None and len(args) > spec.max_args):
                    count = (str(spec.min_args) if spec.max_args == spec.min_args
                             else f"at least {spec.min_args}")
                    self.error(f"{func}() takes {count} arguments, got {len(args)}", expr.span)
                    return None
                types = []
                for i, arg in enumerate(args):
                    self.optional_ok = spec.takes_optional and i == 0
                    types.append(self._type(arg, hyper_only))
                    self.optional_ok = False
                if any(t is None for t in types):
                    return None
                wanted = [Type.BOOL] + [Type.NUMBER] * (len(args) - 1) if spec.takes_condition \
                    else [Type.LIST] + [Type.NUMBER] * (len(args) - 1) if spec.takes_list \
                    else [Type.NUMBER] * len(args)
                for arg, (got, _), want in zip(args, types, wanted):
                    if got is not want:
                        self.error(f"argument of {func}() must be a {want.value}", arg.span)
                        return None
                if self.ast.kind == "schedule" and (spec.reduction or spec.axis or spec.matrix):
                    self.error(f"a schedule is a function of t and its hyperparameters: "
                               f"{func}() is computed over a tensor", expr.span)
                    return None
                if hyper_only and (spec.reduction or spec.axis or spec.matrix):
                    self.error(f"{func}() is computed over a tensor's elements; only "
                               "hyperparameters may appear here", expr.span)
                    return None
                if spec.takes_optional and not (isinstance(args[0], n.Name)
                                                and args[0].id in self.optional):
                    self.error(f"the first argument of {func}() must be a hyperparameter or tuple "
                               f"item whose default is 'none'", args[0].span)
                    return None
                if spec.axis and not any(decl.axis for decl in self.merged.states):
                    self.error(f"{func}() needs a per-row or per-col state: its values exist "
                               "only for factored parameters, beside such a state", expr.span,
                               hint="state r = 0 per-row if factored")
                    return None
                if spec.axis and (_calls(args[0], lambda f: FUNCTIONS[f].matrix
                                         or FUNCTIONS[f].reduction)
                                  or self._per_tensor_read(args[0])):
                    self.error(f"{func}() of a reduction or of a matrix operation is not "
                               "supported", expr.span,
                               hint=f"the argument reads {self._per_tensor_read(args[0])}"
                               if self._per_tensor_read(args[0]) else None)
                    return None
                if spec.matrix:
                    if func == "orthogonalize" and not self._bounded_count(args[4]):
                        self.error(f"orthogonalize()'s iteration count must be a whole number "
                                   f"in [0, {MAX_MATRIX_STEPS}]: a literal, or an int "
                                   "hyperparameter whose domain lies there", args[4].span,
                                   hint=f"hyper ns_steps: int = 5 in [1, {MAX_MATRIX_STEPS}]")
                        return None
                    if any(level is not Level.HOST for _, level in types[1:]) or any(
                            self._per_tensor_read(a) for a in args[1:]):
                        self.error(f"{func}()'s arguments after the first are computed once per "
                                   "step: hyperparameters and t only", expr.span)
                        return None
                    if inner := self._per_tensor_read(args[0]):
                        self.error(f"{func}() of a reduction, of a value computed from one or "
                                   f"of another matrix operation is not supported (its argument "
                                   f"reads {inner})", expr.span)
                        return None
                    return Type.NUMBER, Level.ELEMENT
                if spec.reduction:
                    if _calls(args[0], lambda f: FUNCTIONS[f].matrix):
                        self.error(f"{func}() of a matrix operation is not supported", expr.span)
                        return None
                    if inner := self._matrix_read(args[0]):
                        self.error(f"{func}() of a matrix operation's result is not supported "
                                   f"(its argument reads {inner})", expr.span)
                        return None
                    # A reduction of a value computed from another reduction is summed in a
                    # later pass (the planner's rounds).
                    return Type.NUMBER, (Level.GROUP if func.startswith("group_")
                                         else Level.CHANNEL if spec.channel else Level.TENSOR)
                return Type.NUMBER, max((lv for _, lv in types), key=lambda lv: lv.value)
            case n.Neg(operand=operand):
                return self._operands([operand], hyper_only, Type.NUMBER, Type.NUMBER)
            case n.Binary(left=left, right=right):
                return self._operands([left, right], hyper_only, Type.NUMBER, Type.NUMBER)
            case n.Compare(left=left, right=right) if isinstance(left, n.String) or isinstance(
                    right, n.String):
                return self._choice_compare(expr, hyper_only)
            case n.String():
                self.error("a string can only be compared with a choice hyperparameter",
                           expr.span)
                return None
            case n.Compare(left=left, right=right):
                return self._operands([left, right], hyper_only, Type.NUMBER, Type.BOOL)
            case n.BoolOp(left=left, right=right):
                return self._operands([left, right], hyper_only, Type.BOOL, Type.BOOL)
            case n.Not(operand=operand):
                return self._operands([operand], hyper_only, Type.BOOL, Type.BOOL)
            case n.Ternary(condition=cond, then=then, otherwise=otherwise):
                c = self._expect(cond, Type.BOOL, hyper_only=hyper_only, what="a condition")
                a, b = self._type(then, hyper_only), self._type(otherwise, hyper_only)
                if c is None or a is None or b is None:
                    return None
                if a[0] is not b[0]:
                    self.error("both branches of '? :' must have the same type", expr.span)
                    return None
                return a[0], max(c[1], a[1], b[1], key=lambda lv: lv.value)
        raise TypeError(f"unexpected node {expr!r}")  # pragma: no cover

    def _bounded_count(self, expr: n.Expr) -> bool:
        """A matrix iteration count the work bound allows: an integer literal or an int
        hyperparameter declared within [0, MAX_MATRIX_STEPS]."""
        if isinstance(expr, n.Number):
            try:
                value = float(expr.text)
            except (ValueError, OverflowError):
                return False
            return value.is_integer() and 0 <= value <= MAX_MATRIX_STEPS
        if isinstance(expr, n.Name):
            decl = next((h for h in self.merged.hypers if h.name == expr.id), None)
            domain = decl.domain if decl is not None else None
            return (decl is not None and decl.type == "int" and domain is not None
                    and domain.low is not None and domain.high is not None
                    and domain.low >= 0 and domain.high <= MAX_MATRIX_STEPS)
        return False

    def _per_tensor_read(self, expr: n.Expr) -> str | None:
        """What in ``expr`` is known only per tensor or from another pass (a reduction, a
        matrix operation, ``rows``/``cols``, or a temporary computed from one), or None: a
        reduction's or row mean's argument is summed in a pass that cannot read those."""
        for call in _call_names(expr):
            if FUNCTIONS[call].reduction or FUNCTIONS[call].matrix:
                return f"{call}()"
        for name in _names(expr):
            symbol = self.symbols.get(name)
            if symbol is not None and (symbol.level in (Level.TENSOR, Level.GROUP, Level.CHANNEL)
                                       or name in self.per_tensor_names):
                return f"'{name}'"
        return None

    def _choice_compare(self, expr: n.Compare, hyper_only: bool):
        """``choice == "name"``: the string must be one of the hyperparameter's choices."""
        name, text = (expr.left, expr.right) if isinstance(expr.right, n.String) else \
            (expr.right, expr.left)
        symbol = self.symbols.get(name.id) if isinstance(name, n.Name) else None
        if symbol is None or symbol.type is not Type.CHOICE or expr.op not in ("==", "!="):
            self.error("a string can only be compared (== or !=) with a choice hyperparameter",
                       expr.span)
            return None
        choices = self.hyper_choices[name.id]
        if text.value not in choices:
            self.error(f"{text.value!r} is not a choice of '{name.id}'", text.span,
                       hint=f"its choices: {', '.join(map(repr, choices))}")
            return None
        return Type.BOOL, Level.HOST

    _MISMATCH = {
        Type.NUMBER: ("a bool cannot be used as a number", "use 'c ? a : b' to choose between numbers"),
        Type.BOOL: ("'and', 'or' and 'not' take bools", "compare numbers first, e.g. 'x != 0'"),
    }

    def _operands(self, operands, hyper_only, want: Type, result: Type):
        """Type an operator whose operands must all be ``want``; it yields ``result``."""
        types = [self._type(o, hyper_only) for o in operands]
        if any(t is None for t in types):
            return None
        for operand, (got, _) in zip(operands, types):
            if got is Type.CHOICE:
                self.error("a choice hyperparameter can only be compared with one of its "
                           "strings", operand.span)
                return None
            if got is Type.LIST:
                self.error("a list hyperparameter can only be passed to count_le()",
                           operand.span)
                return None
            if got is not want:
                message, hint = self._MISMATCH[want]
                self.error(message, operand.span, hint=hint)
                return None
        return result, max((lv for _, lv in types), key=lambda lv: lv.value)

    def _suggest(self, name: str, pool=None) -> str | None:
        close = difflib.get_close_matches(name, list(pool if pool is not None else self.symbols), n=1)
        return f"did you mean '{close[0]}'?" if close else None


def _children(expr: n.Expr) -> tuple[n.Expr, ...]:
    """The sub-expressions of a node."""
    match expr:
        case n.Call(args=args):
            return args
        case n.Neg(operand=x) | n.Not(operand=x):
            return (x,)
        case n.Binary(left=a, right=b) | n.Compare(left=a, right=b) | n.BoolOp(left=a, right=b):
            return (a, b)
        case n.Ternary(condition=c, then=a, otherwise=b):
            return (c, a, b)
    return ()


def _names(expr: n.Expr, skip=None):
    """Every name an expression reads (not inside the calls ``skip(function name)`` holds for)."""
    if isinstance(expr, n.Name):
        yield expr.id
    if skip is not None and isinstance(expr, n.Call) and skip(expr.func):
        return
    for child in _children(expr):
        yield from _names(child, skip)


def _call_names(expr: n.Expr):
    """The known functions an expression calls."""
    if isinstance(expr, n.Call) and expr.func in FUNCTIONS:
        yield expr.func
    for child in _children(expr):
        yield from _call_names(child)


def _calls(expr: n.Expr, which) -> bool:
    """Whether ``expr`` calls a function for which ``which(name)`` holds."""
    if isinstance(expr, n.Call) and expr.func in FUNCTIONS and which(expr.func):
        return True
    return any(_calls(child, which) for child in _children(expr))
