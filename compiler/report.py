"""Verification reports: JSON (one object per claim), Markdown, and a self-contained HTML page.

The HTML page works offline: no script, no font or stylesheet from elsewhere. Equations are
MathML printed by a SymPy printer subclass (browsers render MathML natively), so the page shows
exactly the update the compiler lowered, never a transcription of it.
"""

from __future__ import annotations

import functools
import json
import re

import jinja2
import sympy as sp
from sympy.printing.mathml import MathMLPresentationPrinter

from .render import latex_equation
from .verify import SpecReport

STATUS_ORDER = ("proved", "refuted", "unknown", "error")


class ReportMathMLPrinter(MathMLPresentationPrinter):
    """MathML for reports: ``weight_decay`` stays one identifier (not weight with subscript
    decay), and a Piecewise is a brace of cases rather than ``piecewise(...)``."""

    def _print_Symbol(self, sym, style="plain"):
        if re.fullmatch(r"[A-Za-z]\d*", sym.name):
            return super()._print_Symbol(sym, style)
        mi = self.dom.createElement("mi")
        # the shape values _rows, _cols, _n and _eps read as the spec writes them
        name = "epsilon" if sym.name == "_eps" else sym.name.lstrip("_")
        mi.appendChild(self.dom.createTextNode(name))
        return mi

    def _print_Select(self, expr):
        return self._print(expr.as_piecewise())

    def _print_Piecewise(self, expr):
        row = self.dom.createElement("mrow")
        table = self.dom.createElement("mtable")  # the page draws the brace as a left rule
        table.setAttribute("class", "cases")
        table.setAttribute("columnalign", "left")
        for value, condition in expr.args:
            tr = self.dom.createElement("mtr")
            for cell in (self._print(value), self._condition(condition)):
                td = self.dom.createElement("mtd")
                td.appendChild(cell)
                tr.appendChild(td)
            table.appendChild(tr)
        row.appendChild(table)
        return row

    def _print_AxisMean(self, expr):
        return self._named_call("row_mean" if expr.args[1] == -1 else "col_mean", expr.args[:1])

    def _print_Default(self, expr):
        return self._named_call("default", expr.args)

    def _named_call(self, name: str, args):
        """``name(a, b)`` as the spec writes it (the function's SymPy class name means nothing
        to a reader)."""
        row = self.dom.createElement("mrow")
        mi = self.dom.createElement("mi")
        mi.appendChild(self.dom.createTextNode(name))
        row.appendChild(mi)
        fenced = self.dom.createElement("mrow")
        for text, items in (("(", ()), (None, args), (")", ())):
            if text is not None:
                mo = self.dom.createElement("mo")
                mo.appendChild(self.dom.createTextNode(text))
                fenced.appendChild(mo)
            for i, arg in enumerate(items):
                if i:
                    comma = self.dom.createElement("mo")
                    comma.appendChild(self.dom.createTextNode(","))
                    fenced.appendChild(comma)
                fenced.appendChild(self._print(arg))
        row.appendChild(fenced)
        return row

    def _condition(self, condition):
        row = self.dom.createElement("mrow")
        text = self.dom.createElement("mtext")
        text.appendChild(self.dom.createTextNode("otherwise" if condition == sp.true else "if\u00a0"))
        row.appendChild(text)
        if condition != sp.true:
            row.appendChild(self._print(condition))
        return row


def _mathml(expr) -> str:
    # A visible dot between factors: "lr·weight_decay", not "lrweight_decay".
    return ReportMathMLPrinter({"mul_symbol": "dot"}).doprint(expr)


def equation_mathml(equation) -> str:
    parts = [_mathml(equation.target), "<mo>\u2190</mo>", _mathml(equation.value)]
    if equation.condition is not None:
        parts += ["<mspace width='1em'/><mtext>if\u00a0</mtext>", _mathml(equation.condition)]
    return f"<math displaystyle='true'><mrow>{''.join(parts)}</mrow></math>"


#: The version of the JSON report's layout (``optgen verify --json``); a change that removes or
#: renames a field raises it.
JSON_SCHEMA = 1
STATUSES = ("proved", "refuted", "unknown", "error")


def to_json(reports: list[SpecReport]) -> str:
    """The report as one JSON object, for scripts::

        {"schema": 1, "optgen": "0.1.0",
         "totals": {"proved": n, "refuted": n, "unknown": n, "error": n},
         "specs": [{"name": ..., "path": ..., "own_refuted": n,
                    "claims": [{"id", "claim", "own", "status", "detail",
                                "counterexample": {symbol: exact value} | null,
                                "work": expressions built}]}]}

    ``own`` marks the spec's own claims (a refuted one makes ``optgen verify`` exit 1); the
    others are the built-in library's."""
    from .. import __version__

    specs = []
    totals = dict.fromkeys(STATUSES, 0)
    for report in reports:
        claims = []
        for result in report.results:
            totals[result.status] = totals.get(result.status, 0) + 1
            claims.append({"id": result.id, "claim": result.claim, "own": result.own,
                           "status": result.status, "detail": result.detail,
                           "counterexample": result.counterexample, "work": result.work})
        specs.append({"name": report.compiled.name, "path": str(report.compiled.file.path),
                      "own_refuted": len(report.own_refuted), "claims": claims})
    return json.dumps({"schema": JSON_SCHEMA, "optgen": __version__, "totals": totals,
                       "specs": specs}, indent=2)


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("optgen.compiler", "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=jinja2.select_autoescape(["html.j2"]))
    return env


def _context(reports: list[SpecReport], seconds: float | None) -> dict:
    specs = []
    for report in reports:
        checked = report.compiled.checked
        specs.append(dict(
            name=checked.name, description=checked.description,
            file=report.compiled.file.path.name,
            hypers=[dict(name=h.name, default=h.default, domain=str(h.domain or ""),
                         doc=h.doc) for h in checked.hypers],
            equations=[dict(mathml=equation_mathml(eq), latex=latex_equation(eq))
                       for eq in report.compiled.lowered.equations],
            results=report.results,
            counts={s: sum(r.status == s for r in report.results) for s in STATUS_ORDER},
        ))
    totals = {s: sum(spec["counts"][s] for spec in specs) for s in STATUS_ORDER}
    return dict(specs=specs, totals=totals, seconds=seconds, statuses=STATUS_ORDER)


def to_markdown(reports: list[SpecReport], seconds: float | None = None) -> str:
    return _environment().get_template("report.md.j2").render(**_context(reports, seconds))


def to_html(reports: list[SpecReport], seconds: float | None = None) -> str:
    return _environment().get_template("report.html.j2").render(**_context(reports, seconds))
