"""Stage 1, parse: spec text -> :class:`~optgen.compiler.nodes.SpecAST`.

The grammar lives in ``spec.lark`` (Lark, LALR, with positions). Lark's parse tree is turned into
frozen dataclasses at once, and Lark's exceptions into :class:`SpecError` with a readable
sentence ("expected '=' after the hyperparameter's name") instead of a token dump.
"""

from __future__ import annotations

import functools
import math

import lark
from lark import Lark, Token, Transformer_NonRecursive, v_args

from . import nodes as n
from .bounds import MAX_DEPTH, MAX_DIGITS
from .errors import SpecError, SpecErrors, Span

_TOKEN_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "TYPE": "a type",
    "_NL": "the end of the line", "$END": "the end of the file", "COMPARE": "a comparison",
    "ADD_OP": "'+' or '-'", "MUL_OP": "'*' or '/'", "POW_OP": "'^'", "TRUE": "'true'",
    "FALSE": "'false'", "INF": "'inf'", "NEG_INF": "'-inf'", "NONE": "'none'",
    "PER_AXIS": "'per-row' or 'per-col'", "PER_GROUP": "'per-group'",
}


@functools.cache
def _parser() -> Lark:
    return Lark.open("spec.lark", rel_to=__file__, parser="lalr", propagate_positions=True,
                     maybe_placeholders=True)


def parse(source: str, filename: str = "<spec>") -> n.SpecAST:
    """Parse spec text; raises :class:`SpecError` located in ``filename``."""
    try:
        tree = _parser().parse(source)
        items = _ToNodes().transform(tree).children
        return _assemble(items)
    except lark.exceptions.VisitError as error:  # a SpecError raised inside the transformer
        if isinstance(error.orig_exc, SpecError):
            raise error.orig_exc.located(filename, source) from None
        raise
    except lark.exceptions.UnexpectedInput as error:
        raise _syntax_error(error).located(filename, source) from None
    except SpecError as error:
        raise error.located(filename, source) from None


def _syntax_error(error: lark.exceptions.UnexpectedInput) -> SpecError:
    span = Span.point(error.line, error.column) if error.line > 0 else None
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        return SpecError(f"unexpected character {error.char!r}", span)
    expected = sorted({_describe(name) for name in getattr(error, "expected", ()) or ()})
    if isinstance(error, lark.exceptions.UnexpectedEOF):
        return SpecError("unexpected end of file; expected " + _one_of(expected), span)
    token = error.token
    got = "end of line" if token.type == "_NL" else (
        "end of file" if token.type == "$END" else repr(str(token)))
    if token.type in ("_NL", "$END"):
        span = Span.point(token.line or error.line, token.column or error.column)
    else:
        span = _token_span(token)
    hint = None
    if token.type == "NAME" and "_NL" in (getattr(error, "expected", ()) or ()):
        hint = "each statement goes on a line of its own"
    return SpecError(f"unexpected {got}; expected {_one_of(expected)}", span, hint=hint)


def _describe(terminal: str) -> str:
    if terminal in _TOKEN_WORDS:
        return _TOKEN_WORDS[terminal]
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return repr(pattern.value) if pattern.type == "str" else terminal.lower()


def _one_of(words: list[str]) -> str:
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return "one of " + ", ".join(words)


def _token_span(token: Token) -> Span:
    return Span(token.line, token.column, token.end_line, token.end_column)


def _meta_span(meta) -> Span:
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _string_value(token: Token) -> str:
    """The text of a double-quoted STRING token, with backslash escapes resolved."""
    body = str(token)[1:-1]
    out, i = [], 0
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in escapes:
                raise SpecError(f"unknown escape '\\{nxt}' in string", _token_span(token))
            out.append(escapes[nxt])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


@v_args(meta=True, inline=True)
class _ToNodes(Transformer_NonRecursive):
    """Lark tree -> nodes. Items come back as ``(kind, node)`` pairs for :func:`_assemble`.

    Not recursive (a deep expression cannot overflow Python's stack here); each expression's
    depth is counted as it is built, and one nested deeper than MAX_DEPTH is refused at once,
    so no later stage recurses deeper than that."""

    def __init__(self):
        super().__init__()
        self._depth: dict[int, int] = {}  # id(node) -> nesting depth (nodes live until the end)

    def _nested(self, node, *children):
        depth = 1 + max((self._depth.get(id(c), 1) for c in children), default=0)
        if depth > MAX_DEPTH:
            raise SpecError(f"this expression nests {depth} operations deep; the limit is "
                            f"{MAX_DEPTH}", node.span,
                            hint="split it into temporaries, or sum fewer terms in one line")
        self._depth[id(node)] = depth
        return node

    # expressions
    def number(self, meta, token):
        return n.Number(_token_span(token), str(token))

    def boolean(self, meta, token):
        return n.Boolean(_token_span(token), str(token) == "true")

    def string(self, meta, token):
        return n.String(_token_span(token), _string_value(token))

    def choice_decl(self, meta, name, default, *rest):
        *choices, doc = rest
        values = tuple(_string_value(c) for c in choices)
        return ("hyper", n.HyperDecl(
            _meta_span(meta), str(name), "choice", _string_value(default), _token_span(default),
            (), None, _string_value(doc) if doc is not None else None, values))

    def name(self, meta, token):
        return n.Name(_token_span(token), str(token))

    def call(self, meta, func, *args):
        args = tuple(a for a in args if a is not None)
        return self._nested(n.Call(_meta_span(meta), str(func), args), *args)

    def neg(self, meta, operand):
        return self._nested(n.Neg(_meta_span(meta), operand), operand)

    def binary(self, meta, left, op, right):
        op = "^" if str(op) == "**" else str(op)
        return self._nested(n.Binary(_meta_span(meta), op, left, right), left, right)

    def compare(self, meta, left, op, right):
        return self._nested(n.Compare(_meta_span(meta), str(op), left, right), left, right)

    def or_(self, meta, left, right):
        return self._nested(n.BoolOp(_meta_span(meta), "or", left, right), left, right)

    def and_(self, meta, left, right):
        return self._nested(n.BoolOp(_meta_span(meta), "and", left, right), left, right)

    def not_(self, meta, operand):
        return self._nested(n.Not(_meta_span(meta), operand), operand)

    def ternary(self, meta, condition, then, otherwise):
        return self._nested(n.Ternary(_meta_span(meta), condition, then, otherwise),
                            condition, then, otherwise)

    def guard(self, meta, condition):
        return condition

    # literals and domains
    def signed_number(self, meta, token):
        return (_number_value(token), _token_span(token))

    def negative_number(self, meta, token):
        value, _ = self.signed_number(meta, token)
        return (-value, _meta_span(meta))

    def tuple_literal(self, meta, *items):
        values = tuple(None if isinstance(item, Token) else float(item[0]) for item in items)
        return (values, _meta_span(meta))

    def list_literal(self, meta, *items):
        return ([float(item[0]) for item in items if item is not None], _meta_span(meta))

    def open_bracket(self, meta):
        return False

    def closed_bracket(self, meta):
        return True

    def components(self, meta, *names):
        return tuple(str(name) for name in names)

    def domain(self, meta, low_closed, low, high, high_closed):
        return n.Domain(_meta_span(meta), _bound(low), _bound(high), low_closed, high_closed)

    # items
    def optimizer_decl(self, meta, name, base, wraps):
        return ("optimizer", meta, name, base, "wrapper" if wraps is not None else "optimizer")

    def schedule_decl(self, meta, name):
        return ("optimizer", meta, name, None, "schedule")

    def description(self, meta, token):
        return ("description", meta, _string_value(token))

    def hyper_decl(self, meta, name, type_, default, components, domain, doc):
        if isinstance(default, Token):  # TRUE / FALSE / NONE / INF / NEG_INF
            value = {"NONE": None, "INF": math.inf, "NEG_INF": -math.inf}.get(
                default.type, str(default) == "true")
            default = (value, _token_span(default))
        value, default_span = default
        return ("hyper", n.HyperDecl(
            _meta_span(meta), str(name), str(type_) if type_ is not None else None, value,
            default_span, components or (), domain,
            _string_value(doc) if doc is not None else None))

    def state_decl(self, meta, name, init, per_axis, condition):
        axis = str(per_axis)[len("per-"):] if per_axis is not None else None
        return ("state", n.StateDecl(_meta_span(meta), str(name), init, condition, axis=axis))

    def input_decl(self, meta, name, doc):
        return ("input", n.InputDecl(_meta_span(meta), str(name),
                                     _string_value(doc) if doc is not None else None))

    def scalar_decl(self, meta, name, init, per_group):
        return ("state", n.StateDecl(_meta_span(meta), str(name), init, None, scalar=True,
                                     group=per_group is not None))

    def require_decl(self, meta, condition, message):
        return ("require", n.RequireDecl(_meta_span(meta), condition, _string_value(message)))

    def update_header(self, meta):
        return ("update", meta)

    def binding(self, meta, name, value):
        return n.Binding(_meta_span(meta), str(name), value)

    def tuple_expr(self, meta, *items):
        return tuple(items)

    def at_clause(self, meta, *bindings):
        return tuple(bindings)

    def free_clause(self, meta, *names):
        return tuple(names)

    def free_name(self, meta, name):
        return n.Name(_token_span(name), str(name))

    def limit_clause(self, meta, variable, point):
        if str(point) != "oo":
            raise SpecError("limits are taken as t -> oo", _token_span(point))
        if str(variable) != "t":
            raise SpecError("limits are taken in the step t", _token_span(variable))
        return str(variable)

    def given_clause(self, meta, *conditions):
        return tuple(conditions)

    def relation_claim(self, meta, claim_id, free, at, limit, relation, given):
        return ("claim", n.ClaimDecl(_meta_span(meta), str(claim_id), at or (), limit, relation,
                                     given or (), free=free or ()))

    def equivalence_claim(self, meta, claim_id, free, at, negated, other, *rest):
        *bindings, steps = rest
        return ("claim", n.ClaimDecl(
            _meta_span(meta), str(claim_id), at or (), None, None, (), str(other),
            tuple(b for b in bindings if b is not None), int(str(steps)), negated is not None,
            free=free or ()))

    def assign(self, meta, target, value, condition):
        return ("assign", n.Assign(_meta_span(meta), str(target), _token_span(target), value,
                                   condition))


def _number_value(token: Token) -> float | int:
    text = str(token)
    if len(text) > MAX_DIGITS:
        raise SpecError(f"a number literal may have at most {MAX_DIGITS} characters",
                        _token_span(token))
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def _bound(bound) -> float | None:
    if isinstance(bound, Token):  # INF / NEG_INF
        return None
    return float(bound[0])


def _assemble(items: list[tuple]) -> n.SpecAST:
    """Put the items in their places, checking the file's layout (header first, one update)."""
    errors: list[SpecError] = []
    name = base = None
    spec_kind = "optimizer"
    name_span = base_span = None
    description = None
    hypers, states, requires, updates, claims, inputs = [], [], [], [], [], []
    in_update = False
    for index, item in enumerate(items):
        kind = item[0]
        if kind == "optimizer":
            _, meta, name_token, base_token, spec_kind = item
            if name is not None or index != 0:
                errors.append(SpecError("'optimizer NAME' (or 'schedule NAME') must be the first "
                                    "line of a spec, once",
                                        _meta_span(meta)))
                continue
            name, name_span = str(name_token), _token_span(name_token)
            if base_token is not None:
                base, base_span = str(base_token), _token_span(base_token)
        elif kind == "description":
            _, meta, text = item
            if description is not None or index != 1:
                errors.append(SpecError(
                    "a description string belongs on the line after 'optimizer NAME'",
                    _meta_span(meta)))
            description = text
        elif kind == "update":
            if in_update:
                errors.append(SpecError("a spec has one 'update:' section",
                                        _meta_span(item[1])))
            in_update = True
        elif kind == "claim":
            claims.append(item[1])
        elif kind == "assign":
            if not in_update:
                errors.append(SpecError("assignments belong in the 'update:' section",
                                        item[1].span, hint="add a line 'update:' above it"))
            updates.append(item[1])
        else:
            node = item[1]
            if in_update:
                errors.append(SpecError(f"'{kind}' declarations go before 'update:'", node.span))
            {"hyper": hypers, "state": states, "require": requires,
             "input": inputs}[kind].append(node)
    if name is None:
        errors.insert(0, SpecError("a spec starts with 'optimizer NAME' or 'schedule NAME'",
                                   Span.point(1, 1)))
    if errors:
        raise errors[0] if len(errors) == 1 else SpecErrors(errors)
    return n.SpecAST(name, name_span, base, base_span, description or "", tuple(hypers),
                     tuple(states), tuple(requires), tuple(updates), in_update, tuple(claims),
                     spec_kind, tuple(inputs))
