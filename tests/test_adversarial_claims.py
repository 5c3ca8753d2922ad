"""An adversarial claim set for ``optgen verify`` (tests/adversarial/*.opt), with each claim's
truth established without optgen (tests/adversarial/truth.py: hand derivations, transcribed in
mpmath).

(a) The ground truth checks itself: it covers exactly the spec files' claim lines, every witness
breaks its claim at 50 digits inside every domain, given and require, every claim whose
universal statement is true survives dense sampling (domain edges, 1e-20 to 1e20), and every
hand-derived limit matches the transcription at large t.

(b) The verifier is scored on it: no false claim proved, no true claim refuted, no error, every
refutation's counterexample inside the domains and givens (and a real violation), and at least
80% of the true claims proved.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from optgen.compiler.verify import verify_file

FOLDER = Path(__file__).resolve().parent / "adversarial"
PROVED_SHARE = 0.80


def _load_truth():
    name = "optgen_adversarial_truth"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FOLDER / "truth.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return sys.modules[name]


truth = _load_truth()


def _name(c) -> str:
    return f"{c.spec}:{c.id}"


# (a) the ground truth ---------------------------------------------------------------------------

def test_entries_cover_every_claim_line_and_nothing_else():
    files = truth.spec_files()
    assert files, "no spec files"
    for path in files:
        ids = truth.spec_claim_ids(path)
        assert len(ids) == len(set(ids)), f"{path.name}: a claim id repeats"
        entries = [c.id for c in truth.CLAIMS if c.spec == path.name]
        assert entries == ids, (f"{path.name}: truth.py has {sorted(set(entries) - set(ids))} "
                                f"that the file lacks, lacks {sorted(set(ids) - set(entries))}")
    assert {c.spec for c in truth.CLAIMS} <= {p.name for p in files}
    assert len(truth.BY_KEY) == len(truth.CLAIMS), "an entry repeats"


def test_the_set_is_large_and_mixed():
    false = [c for c in truth.CLAIMS if not c.truth]
    true = [c for c in truth.CLAIMS if c.truth]
    assert len(false) >= 70 and len(true) >= 50
    for group in (false, true):
        kinds = {truth.SPECS[c.spec].kind for c in group}
        assert kinds == {"optimizer", "schedule"}
        assert any(c.is_limit for c in group) and any(c.rel == "equiv" for c in group)
    for c in truth.CLAIMS:
        assert c.reason, _name(c)
        if not c.universal:
            assert c.witness is not None, f"{_name(c)} needs a witness"


_FUNCTIONS = {"abs", "sqrt", "sign", "exp", "log", "cos", "floor", "min", "max", "clip", "lerp",
              "where", "pi", "oo", "and", "or", "not", "true", "false"}


def _names(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)) - _FUNCTIONS


def _top_level_split(text: str) -> list[str]:
    """``a = 1, b = (x, y)`` -> the bindings, split at commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


def _readme_free_variables(c, line: str) -> set[str]:
    """The free variables of a claim line by the README's rules, read off its text: p, g and
    the states (optimizers) and t unless pinned (a limit's t is its variable); the hypers named
    in the relation, the givens, the ``at`` values and the bindings (not the names they bind);
    names only the givens introduce; for an equivalence p, g1..gK and the hypers named."""
    spec = truth.SPECS[c.spec]
    body = line.split(":", 1)[1].strip()
    pinned, mentioned = set(), set()
    if body.startswith("at "):
        pins, body = body[3:].split(":", 1)
        for binding in pins.split(","):
            name, value = binding.split("=", 1)
            pinned.add(name.strip())
            mentioned |= _names(value)
        body = body.strip()
    limit = body.startswith("limit t -> oo:")
    body = body.split(":", 1)[1] if limit else body
    hypers = set(spec.hypers)
    match = re.match(r"(not )?equivalent to \w+\((.*)\) over (\d+) steps", body.strip())
    if match:
        for binding in _top_level_split(match.group(2)):
            if "=" in binding:
                mentioned |= _names(binding.split("=", 1)[1])
        steps = int(match.group(3))
        return {"p", *(f"g{k}" for k in range(1, steps + 1))} | (mentioned & hypers)
    relation, _, given = body.partition(" given ")
    mentioned |= _names(relation) | _names(given)
    known = hypers | {"t", "p", "g", "p_new", "lr"} | set(spec.states) | set(spec.model) | \
        {f"{state}_new" for state in spec.states}
    free = (mentioned & hypers) | (_names(given) - known)
    if spec.kind == "optimizer":
        free |= {"p", "g", *spec.states} - pinned
    if not limit and "t" not in pinned:
        free.add("t")
    return free


def test_free_variables_follow_the_readme():
    """truth.py's free variables (and so its witnesses) agree with the README's rules read
    off each claim's text."""
    wrong = []
    for path in truth.spec_files():
        lines = [line for line in path.read_text().splitlines() if line.startswith("claim ")]
        for line in lines:
            c = truth.BY_KEY[(path.name, line.split(":", 1)[0].split()[1])]
            expected = _readme_free_variables(c, line)
            if set(c.free) != expected:
                wrong.append(f"{_name(c)}: truth.py {sorted(c.free)}, the text {sorted(expected)}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("c", [c for c in truth.CLAIMS if not c.universal], ids=_name)
def test_witness_breaks_the_claim(c):
    problem = truth.check_witness(c)
    assert problem is None, f"{_name(c)}: {problem}"


@pytest.mark.parametrize("c", [c for c in truth.CLAIMS if c.universal], ids=_name)
def test_claim_holds_on_samples(c):
    tried, problem = truth.check_samples(c)
    assert problem is None, f"{_name(c)}: {problem}"
    assert tried >= (20 if c.free else 1), f"{_name(c)}: only {tried} admissible points"


# (b) the verifier's score ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def verdicts():
    out = {}
    for path in truth.spec_files():
        for r in verify_file(path, own_only=True).results:
            out[(path.name, r.id)] = r
    return out


def _row(c, r) -> str:
    detail = " ".join(r.detail.split())
    detail = detail if len(detail) <= 160 else detail[:157] + "..."
    example = "" if r.counterexample is None else f" at {r.counterexample}"
    return (f"  {c.spec:20s} {c.id:40s} {'true' if c.truth else 'FALSE':5s} {r.status:8s} "
            f"{detail}{example}")


def _table(title, rows) -> str:
    return f"{title} ({len(rows)}):\n" + "\n".join(_row(c, r) for c, r in rows)


def _pairs(verdicts):
    return [(c, verdicts[c.key]) for c in truth.CLAIMS if c.key in verdicts]


def test_the_verifier_reports_every_claim(verdicts):
    assert set(verdicts) == set(truth.BY_KEY), (
        f"missing {sorted(set(truth.BY_KEY) - set(verdicts))}, "
        f"unexpected {sorted(set(verdicts) - set(truth.BY_KEY))}")


def test_no_false_claim_is_proved(verdicts):
    bad = [(c, r) for c, r in _pairs(verdicts) if not c.truth and r.status == "proved"]
    if bad:
        pytest.fail(_table("false claims proved", bad), pytrace=False)


def test_no_true_claim_is_refuted(verdicts):
    bad = [(c, r) for c, r in _pairs(verdicts) if c.truth and r.status == "refuted"]
    if bad:
        pytest.fail(_table("true claims refuted", bad), pytrace=False)


def test_no_claim_errors(verdicts):
    bad = [(c, r) for c, r in _pairs(verdicts) if r.status == "error"]
    if bad:
        pytest.fail(_table("claims the verifier failed on", bad), pytrace=False)


def test_counterexamples_meet_the_domains_and_givens(verdicts):
    """Every counterexample the verifier reports (a refutation's; a proved ``not equivalent``'s
    point where the runs differ) names only the claim's free variables, lies inside every
    domain, given and require (checked on the transcription), and breaks the statement there
    (for a claim that is false, or a ``not equivalent`` that is true)."""
    problems = []
    for c, r in _pairs(verdicts):
        reports_point = (r.status == "refuted" and not c.negated) or \
            (r.status == "proved" and c.negated)
        if not reports_point:
            continue
        if r.counterexample is None:
            problems.append((c, r, "no counterexample"))
            continue
        values, extra = truth.counterexample_values(c, r.counterexample)
        if extra:
            problems.append((c, r, f"names {extra}, which are not free in the claim"))
            continue
        ok, broken = truth.judge(c, values)
        if not ok:
            problems.append((c, r, "outside a domain, a given or a require condition"))
        elif not c.universal and broken is not True:
            problems.append((c, r, "the statement holds there"))
    if problems:
        pytest.fail("bad counterexamples:\n" + "\n".join(
            f"{_row(c, r)}\n    -> {why}" for c, r, why in problems), pytrace=False)


def test_most_true_claims_are_proved(verdicts):
    pairs = [(c, r) for c, r in _pairs(verdicts) if c.truth]
    proved = sum(r.status == "proved" for _, r in pairs)
    share = proved / len(pairs)
    if share < PROVED_SHARE:
        pytest.fail(
            f"{proved} of {len(pairs)} true claims proved ({share:.0%}, needed "
            f"{PROVED_SHARE:.0%})\n"
            + _table("true claims not proved", [(c, r) for c, r in pairs if r.status != "proved"]),
            pytrace=False)


def test_statuses_are_identical_under_load(verdicts):
    """The budget is a count of symbolic work, not a clock: with both cores held by spinning
    processes, the spec file with the most symbolic work ends every claim the same."""
    import subprocess
    import sys

    heaviest = sorted(truth.spec_files(), key=lambda path: -sum(
        r.work for (name, _), r in verdicts.items() if name == path.name))[:1]
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy = {(path.name, r.id): r.status for path in heaviest
                for r in verify_file(path, own_only=True).results}
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    idle = {key: verdicts[key].status for key in busy}
    assert busy == idle
