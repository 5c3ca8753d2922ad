"""Spec mistakes are reported as file:line:col, the line and a caret; never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from optgen.compiler.errors import SpecError, SpecErrors
from optgen.compiler.parse import parse
from optgen.compiler.pipeline import check_file

HEADER = "optimizer demo\nhyper lr = 1e-3 in [0, inf)\nstate m = 0\n"


def errors_of(tmp_path, text: str, name: str = "demo.opt") -> list[SpecError]:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        check_file(path)
    error = info.value
    return error.errors if isinstance(error, SpecErrors) else [error]


# (spec text, line, column, words the message must contain)
CASES = [
    pytest.param(HEADER + "update:\n  m = b3*m + g\n  p = p - lr*m\n", 5, 7, "undefined name 'b3'",
                 id="undefined-name"),
    pytest.param(HEADER + "update:\n  p = p - lr * foo(g)\n", 5, 16, "unknown function 'foo'",
                 id="unknown-function"),
    pytest.param(HEADER + "update:\n  lr = 2\n  p = p - lr*g\n", 5, 3,
                 "cannot assign to hyperparameter 'lr'", id="assign-to-hyper"),
    pytest.param(HEADER + "update:\n  t = 2\n  p = p - lr*g\n", 5, 3, "cannot assign to step 't'",
                 id="assign-to-t"),
    pytest.param("optimizer demo\nhyper lr = 5 in [0, 1)\nupdate:\n  p = p - lr*g\n", 2, 12,
                 "outside its domain [0, 1)", id="default-outside-domain"),
    pytest.param("optimizer demo\nhyper k: int = 1.5\nupdate:\n  p = p - k*g\n", 2, 16,
                 "must be an integer", id="int-default"),
    pytest.param("optimizer demo\nhyper on: bool = 1\nupdate:\n  p = p - g\n", 2, 18,
                 "bool hyperparameter 'on' is a float", id="bool-default"),
    pytest.param("optimizer demo\nhyper lr = 1\nhyper lr = 2\nupdate:\n  p = p - lr*g\n", 3, 1,
                 "'lr' is already defined", id="duplicate-hyper"),
    pytest.param(HEADER + "state m = 1\nupdate:\n  p = p - lr*g\n", 4, 1, "'m' is already defined",
                 id="duplicate-state"),
    pytest.param(HEADER + "update:\n  p = p - lr*x\n  x = g\n", 5, 14,
                 "'x' is used before it is assigned", id="use-before-definition"),
    pytest.param(HEADER + "update:\n  p = p - lr * sqrt(g, g)\n", 5, 16,
                 "sqrt() takes 1 arguments, got 2", id="arity"),
    pytest.param(HEADER + "update:\n  p = p - lr * (g > 0)\n", 5, 17, "a bool cannot be used",
                 id="bool-as-number"),
    pytest.param(HEADER + "update:\n  p = p - lr*g if lr\n", 5, 19, "must be a bool",
                 id="number-as-condition"),
    pytest.param(HEADER + "update:\n  m = g\n", 1, 11, "never assigns 'p'", id="p-never-assigned"),
    pytest.param(HEADER + "state _x = 0\nupdate:\n  p = p - g\n", 4, 1, "reserved",
                 id="reserved-name"),
    pytest.param(HEADER + "update:\n  p = p - g $ 2\n", 5, 13, "unexpected character '$'",
                 id="bad-character"),
    pytest.param(HEADER + "update:\n  p = p - lr * (g +\n", 5, 20, "unexpected end of line",
                 id="unclosed-paren"),
    pytest.param("optimizer demo\nhyper lr = 1e-3 in [0 1)\n", 2, 23, "expected one of ')', ','",
                 id="domain-syntax"),
    pytest.param(HEADER + "p = p - g\n", 4, 1, "belong in the 'update:' section",
                 id="assign-outside-update"),
    pytest.param("hyper lr = 1\nupdate:\n  p = p - g\n", 1, 1, "starts with 'optimizer NAME'",
                 id="missing-header"),
    pytest.param("optimizer demo\nhyper betas = (0.9, 0.99)\nupdate:\n  p = p - g\n", 2, 1,
                 "needs a name for each of its 2 items", id="unnamed-tuple"),
    pytest.param(HEADER + "update:\n  y = 2 if lr > 0\n  p = p - y*g\n", 5, 3,
                 "first assigned under a condition", id="conditional-first-assignment"),
    pytest.param(HEADER + "state v = g\nupdate:\n  p = p - g\n", 4, 11,
                 "may use hyperparameters and p, not input 'g'", id="state-init-not-host"),
    pytest.param("optimizer demo extends nowhere\n", 1, 24, "cannot find spec 'nowhere'",
                 id="unknown-base"),
    pytest.param("optimizer demo\nhyper m = [1, -2] in [0, inf)\nupdate:\n  p = p - g\n", 2, 11,
                 "item -2.0 of 'm' is outside its domain", id="list-item-domain"),
    pytest.param("optimizer demo\nhyper m = [1, 2]\nupdate:\n  p = p - m * g\n", 4, 11,
                 "a list hyperparameter can only be passed to count_le()", id="list-arithmetic"),
    pytest.param(HEADER + "update:\n  p = lr == \"x\" ? p : g\n", 5, 7,
                 "a string can only be compared (== or !=) with a choice", id="string-compare"),
    pytest.param("optimizer demo\nhyper f = \"c\" in {\"a\", \"b\"}\nupdate:\n  p = p - g\n", 2, 11,
                 "default 'c' of 'f' is not one of its choices", id="choice-default"),
    pytest.param("optimizer demo\nhyper f = \"a\" in {\"a\", \"b\"}\nupdate:\n  p = f == \"z\" ? p : g\n",
                 4, 12, "'z' is not a choice of 'f'", id="choice-typo"),
    pytest.param(HEADER + "update:\n  p = p - orthogonalize(g, g, 1, 1, 5, 0)\n", 5, 11,
                 "arguments after the first are computed once per step", id="matrix-host-args"),
    pytest.param(HEADER + "state r = 0 per-row\nupdate:\n  p = p - g\n", 4, 1,
                 "declare it 'if factored'", id="per-row-without-factored"),
    pytest.param("optimizer demo\nhyper eps = (none, 1) as (e1, e2)\nupdate:\n  p = p - e1*g\n",
                 4, 11, "'e1' may be none; read it as default(e1, fallback)", id="none-item-read"),
    pytest.param("optimizer demo\nhyper eps = (1, 1) as (e1, e2)\nupdate:\n"
                 "  p = p - default(e1, epsilon)*g\n", 4, 19,
                 "first argument of default() must be a hyperparameter or tuple item whose "
                 "default is 'none'",
                 id="default-of-required"),
    pytest.param("optimizer demo\nhyper n: int = none\nupdate:\n  p = p - g\n", 2, 16,
                 "cannot default to none", id="none-int"),
    pytest.param("optimizer demo\nhyper lr = none\nupdate:\n  p = p - lr * g\n", 4, 11,
                 "may be none", id="none-read-directly"),
]


@pytest.mark.parametrize("text, line, column, message", CASES)
def test_error_location_and_message(tmp_path, text, line, column, message):
    errors = errors_of(tmp_path, text)
    first = errors[0]
    assert message in first.message
    assert (first.span.line, first.span.column) == (line, column)
    rendered = str(first)
    assert rendered.startswith(f"{tmp_path / 'demo.opt'}:{line}:{column}: ")
    source_line = text.splitlines()[line - 1]
    caret_line = rendered.splitlines()[2]
    assert rendered.splitlines()[1].strip() == source_line.strip()
    assert caret_line.index("^") - 4 == column - 1  # the caret sits under the column


def test_several_errors_reported_together(tmp_path):
    errors = errors_of(tmp_path, HEADER + "update:\n  m = b3*m\n  p = p - lr * foo(m)\n")
    assert [(e.span.line, e.span.column) for e in errors] == [(5, 7), (6, 16)]


def test_crlf_and_lf_parse_the_same():
    text = "optimizer demo\n  \"d\"\nhyper lr = 1e-3 in [0, inf)  # c\nupdate:\n  p = p - lr*g\n"
    assert parse(text) == parse(text.replace("\n", "\r\n"))


def test_crlf_errors_have_the_same_columns(tmp_path):
    text = HEADER + "update:\n  m = b3*m + g\n  p = p - lr*m\n"
    lf = errors_of(tmp_path, text, "lf.opt")[0]
    crlf = errors_of(tmp_path, text.replace("\n", "\r\n"), "crlf.opt")[0]
    assert lf.span == crlf.span


def test_comments_and_line_continuation():
    ast = parse(textwrap.dedent("""\
        # a comment line
        optimizer demo  # trailing comment
        hyper lr = 1e-3
        update:
          p = p - lr * \\
              g
        """))
    assert ast.name == "demo" and len(ast.updates) == 1


def test_cli_check_prints_location_not_traceback(tmp_path):
    path = tmp_path / "bad.opt"
    path.write_text(HEADER + "update:\n  m = b3*m + g\n  p = p - lr*m\n")
    result = subprocess.run([sys.executable, "-m", "optgen.cli", "check", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{path}:5:7: undefined name 'b3'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "    ^^" in result.stderr


def test_cli_check_accepts_the_catalogue():
    from optgen.compiler.pipeline import catalogue_paths

    paths = [str(p) for p in catalogue_paths()]
    result = subprocess.run([sys.executable, "-m", "optgen.cli", "check", *paths],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == len(paths)


def test_suggestion_for_typo(tmp_path):
    errors = errors_of(tmp_path, HEADER + "update:\n  p = p - lrr*g\n")
    assert errors[0].hint == "did you mean 'lr'?"


def test_tuple_hyper_is_used_through_its_items(tmp_path):
    errors = errors_of(tmp_path, "optimizer demo\nhyper betas = (0.9, 0.99) as (b1, b2)\n"
                                 "update:\n  p = p - betas*g\n")
    assert errors[0].message == "'betas' is a tuple; use its items b1, b2"
    assert (errors[0].span.line, errors[0].span.column) == (4, 11)


def test_mistake_in_a_base_spec_is_reported_in_the_base_file(tmp_path):
    (tmp_path / "base.opt").write_text("optimizer base\nhyper lr = 1\nupdate:\n  p = p - lrr*g\n")
    errors = errors_of(tmp_path, "optimizer demo extends base\nhyper lr = 2\n")
    assert errors[0].filename == str(tmp_path / "base.opt")
    assert (errors[0].span.line, errors[0].span.column) == (4, 11)


FACTORED = "optimizer demo\nstate r = 0 per-row if factored\nupdate:\n"


@pytest.mark.parametrize("body, line, message", [
    ("  r = lerp(r, g^2, 0.5) if factored\n  p = p - g\n", 4,
     "per-row state 'r' varies along the columns; reduce it with row_mean()"),
    ("  r = lerp(r, row_mean(g^2), 0.5) if factored\n  p = p - g/sqrt(r)\n", 5,
     "exist only where 'factored' holds"),
])
def test_factored_state_mistakes_are_located(tmp_path, body, line, message):
    """Shape mistakes of per-row states are found when the step is planned, and located."""
    from optgen.compiler.pipeline import compile_file

    path = tmp_path / "demo.opt"
    path.write_text(FACTORED + body)
    with pytest.raises(SpecError) as info:
        compile_file(path)
    assert message in str(info.value)
    assert f"demo.opt:{line}:" in str(info.value)
