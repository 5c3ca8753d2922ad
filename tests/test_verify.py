"""Verification: the statuses mathematics gives, honest under planted false claims, checked
counterexamples, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import optgen
from optgen.compiler.pipeline import catalogue_paths
from optgen.compiler.verify import verify_file

#: What mathematics says about every claim in the catalogue (derivations in the spec files and
#: in claims_builtin's docstring). "unknown" marks what SymPy is not expected to settle.
EXPECTED = {
    # schedules: continuity at warmup boundaries and end values
    "cosine_annealing": {"starts-at-base-lr": "proved", "ends-at-eta-min": "proved"},
    "cosine_warm_restarts": {"restarts-at-base-lr": "proved",
                             "second-restart-with-doubling": "proved"},
    "exponential_lr": {"decays-to-zero": "proved"},
    "inverse_sqrt": {"continuous-at-warmup-end": "proved", "decays-to-zero": "proved"},
    "linear_lr": {"reaches-end-factor": "proved"},
    "multistep_lr": {"starts-at-base-lr": "proved",
                     "decayed-twice-after-the-last-milestone": "proved"},
    "one_cycle": {"starts-at-initial-lr": "proved", "ends-at-min-lr": "proved"},
    "polynomial_lr": {"ends-at-zero": "proved"},
    "step_lr": {"constant-within-a-period": "proved"},
    "warmup_cosine": {"continuous-at-warmup-end": "proved", "ends-at-eta-min": "proved"},
    "warmup_stable_decay": {"continuous-at-warmup-end": "proved", "ends-at-min-lr": "proved"},
    "adagrad": {"first-step-magnitude": "proved", "scale-invariance": "proved",
                "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "refuted",
                "stable-lr-range": "unknown", "accumulator-never-decreases": "proved",
                "effective-lr-never-increases": "proved"},
    "adafactor": {"first-step-magnitude": "refuted", "scale-invariance": "unknown",
                  "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "proved",
                  "stable-lr-range": "unknown", "first-step-is-relative": "unknown"},
    "adabelief": {"bias-correction-limit": "proved", "first-step-magnitude": "refuted",
                  "scale-invariance": "proved", "zero-grad-fixed-point": "proved",
                  "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown"},
    "adabound": {"bias-correction-limit": "proved", "first-step-magnitude": "refuted",
                 "scale-invariance": "refuted", "zero-grad-fixed-point": "proved",
                 "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown",
                 "bounds-close-on-final-lr": "proved"},
    "adadelta": {"first-step-magnitude": "refuted", "scale-invariance": "proved",
                 "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "refuted",
                 "stable-lr-range": "unknown", "accumulators-stay-nonnegative": "proved"},
    # adamax scale-invariance is true (max(c*a, c*b) = c*max(a, b) for c > 0) but SymPy
    # does not simplify it: unknown, not proved.
    "adamax": {"bias-correction-limit": "proved", "first-step-magnitude": "proved",
               "scale-invariance": "unknown", "zero-grad-fixed-point": "proved",
               "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown",
               "first-step-is-shorter-than-lr": "proved"},
    "asgd": {"first-step-magnitude": "refuted", "scale-invariance": "refuted",
             "zero-grad-fixed-point": "refuted", "l2-equals-decoupled-decay": "proved",
             "stable-lr-range": "unknown"},
    # LAMB's scale invariance holds on every tensor: with eps = 0 neither its update nor the
    # ratio of its norms sees c (each norm is its term plus the rest of the tensor's)
    "lamb": {"bias-correction-limit": "proved", "first-step-magnitude": "refuted",
             "scale-invariance": "proved", "zero-grad-fixed-point": "proved",
             "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown"},
    # lars scale-invariance holds (trust*u = eta*|p|*sign(g) at eps = 0) but SymPy leaves it.
    "lars": {"first-step-magnitude": "refuted", "scale-invariance": "refuted",
             "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "refuted",
             "stable-lr-range": "unknown", "stable-lr-range-momentum": "unknown"},
    "lion": {"first-step-magnitude": "proved", "scale-invariance": "proved",
             "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "proved",
             "stable-lr-range": "unknown", "first-step-moves-every-element-by-lr": "proved"},
    # Muon's Newton-Schulz stage is opaque to SymPy: what depends on its value stays unknown.
    "muon": {"first-step-magnitude": "unknown", "scale-invariance": "unknown",
             "zero-grad-fixed-point": "unknown", "l2-equals-decoupled-decay": "proved",
             "stable-lr-range": "unknown", "stable-lr-range-momentum": "unknown"},
    "nadam": {"bias-correction-limit": "proved", "first-step-magnitude": "refuted",
              "scale-invariance": "proved", "zero-grad-fixed-point": "proved",
              "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown",
              "mu-product-shrinks": "proved"},
    "radam": {"bias-correction-limit": "proved", "first-step-magnitude": "refuted",
              "scale-invariance": "refuted", "zero-grad-fixed-point": "proved",
              "l2-equals-decoupled-decay": "proved", "stable-lr-range": "unknown",
              "first-step-is-momentum-sgd": "proved"},
    "rprop": {"first-step-magnitude": "refuted", "scale-invariance": "proved",
              "zero-grad-fixed-point": "proved", "stable-lr-range": "unknown",
              "sign-flip-skips-the-step": "proved"},
    "adam": {"bias-correction-limit": "proved", "first-step-magnitude": "proved",
             "scale-invariance": "proved", "zero-grad-fixed-point": "proved",
             "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown",
             "bias-corrected-moment-tends-to-raw": "proved",
             "first-step-is-sign-descent": "proved"},
    "adamw": {"bias-correction-limit": "proved", "first-step-magnitude": "proved",
              "scale-invariance": "proved", "zero-grad-fixed-point": "proved",
              "l2-equals-decoupled-decay": "proved", "stable-lr-range": "unknown",
              "not-adam-with-l2": "proved"},
    "momentum_ema": {"first-step-magnitude": "refuted", "scale-invariance": "refuted",
                     "zero-grad-fixed-point": "proved", "stable-lr-range": "proved",
                     "same-as-pytorch-momentum": "proved",
                     "not-unscaled-pytorch-momentum": "proved"},
    "nesterov_lookahead": {"first-step-magnitude": "refuted", "scale-invariance": "refuted",
                           "zero-grad-fixed-point": "proved", "stable-lr-range": "proved",
                           "stable-lr-range-momentum": "proved",
                           "same-as-pytorch-nesterov": "proved"},
    "rmsprop": {"first-step-magnitude": "refuted", "scale-invariance": "proved",
                "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "refuted",
                "stable-lr-range": "unknown", "stable-lr-range-momentum": "unknown",
                "adam-without-momentum-and-bias-correction": "proved",
                "accumulator-stays-bounded": "proved"},
    "schedule_free_adamw": {"bias-correction-limit": "proved", "first-step-magnitude": "proved",
                            "scale-invariance": "proved", "zero-grad-fixed-point": "proved",
                            "l2-equals-decoupled-decay": "proved", "stable-lr-range": "unknown",
                            "first-step-averages-onto-z": "proved"},
    # sophia first-step-magnitude is false for |g| < 1e-15/(1 - b1) (the clip ratio falls below
    # 1); sampling does not reach such values, so it stays unknown rather than refuted.
    "sophia": {"first-step-magnitude": "unknown", "scale-invariance": "unknown",
               "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "proved",
               "stable-lr-range": "unknown", "steps-at-most-lr": "proved"},
    # a wrapper gets no built-in step claims: its step runs after an inner optimizer it does
    # not know, so they would speak of its outer step alone (which reads no g)
    "lookahead": {"alpha-one-keeps-the-fast-weights": "proved",
                  "between-syncs-nothing-moves": "proved"},
    # ADOPT's first step only records g^2 (nothing moves: the magnitude claim is false), its
    # later steps normalize g by the root of the previous v (with eps = 0, scale-free), and an
    # L2 term is normalized with g: not decoupled decay
    "adopt": {"first-step-magnitude": "refuted", "scale-invariance": "proved",
              "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "refuted",
              "stable-lr-range": "unknown", "first-step-moves-nothing": "proved",
              "update-is-bounded-by-clip": "unknown"},
    # Adan's weight decay is proximal (p / (1 + lr*wd) after the step), not decoupled
    "adan": {"bias-correction-limit": "proved", "first-step-magnitude": "proved",
             "scale-invariance": "proved", "zero-grad-fixed-point": "proved",
             "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown",
             "first-difference-is-zero": "proved"},
    # NovoGrad normalizes g by the root of its per-tensor second moment: its first step is
    # g/norm(g) (proved for every tensor), which is lr in size on a one-element tensor only
    # (unknown, not proved: the verifier says which proofs hold for one element alone)
    "novograd": {"first-step-magnitude": "unknown", "scale-invariance": "proved",
                 "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "proved",
                 "stable-lr-range": "unknown", "first-step-is-g-over-its-norm": "proved"},
    # Prodigy's first step is not lr in size; its decay is decoupled times d*lr, not lr; a step
    # with lr = 0 changes nothing; its first step is sign descent on a one-element tensor (its
    # step size reads sums over the group, all of which its first step pins: proved for every
    # tensor); its bias correction reads its group count k, not t
    "prodigy": {"first-step-magnitude": "refuted",
                "scale-invariance": "unknown", "zero-grad-fixed-point": "proved",
                "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown",
                "d-never-shrinks-from-start": "proved", "lr-zero-leaves-p": "proved",
                "lr-zero-leaves-d": "proved", "lr-zero-is-not-counted": "proved",
                "first-step-is-scaled-sign-descent": "proved"},
    # D-Adapt Adam's first step moves by about d0*lr, not lr; its scale claim sets eps to 0,
    # outside its domain; its decay is decoupled times d*lr; d is non-decreasing (a Max over the old d), true,
    # but with each group sum its term plus the rest of the group's (a spec's own claims
    # speak of one element) SymPy does not settle it within the default budget
    "dadapt_adam": {"first-step-magnitude": "refuted",
                    "scale-invariance": "unknown", "zero-grad-fixed-point": "proved",
                    "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown",
                    "d-never-shrinks": "unknown", "lr-zero-leaves-p": "proved",
                    "lr-zero-leaves-d": "proved", "lr-zero-is-not-counted": "proved"},
    # MADGRAD's step grows with sqrt(t) and is scaled by a cube root (not scale-invariant);
    # eps is added to lr, so its decoupled decay is not lr*lam
    "madgrad": {"first-step-magnitude": "refuted", "scale-invariance": "refuted",
                "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "refuted",
                "stable-lr-range": "unknown", "stable-lr-range-momentum": "unknown",
                "no-momentum-is-dual-averaging": "proved"},
    # MARS's one-element tensor is a vector: AdamW with weight_decay_1d = 0.1 by default, so
    # g = 0 still decays p, and the first step is not lr in size
    "mars": {"bias-correction-limit": "proved", "first-step-magnitude": "refuted",
             "scale-invariance": "unknown", "zero-grad-fixed-point": "refuted",
             "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown"},
    # AdamP and SGDP project the update of a parameter with two or more dimensions: the
    # verifier's one-element tensor has ndim 1, so what holds only without the projection is
    # unknown, and so is the stable range: on a matrix the projection makes the step on
    # f = (L/2)|p|^2 nonlinear
    "adamp": {"bias-correction-limit": "proved", "first-step-magnitude": "unknown",
              "scale-invariance": "unknown", "zero-grad-fixed-point": "proved",
              "l2-equals-decoupled-decay": "unknown", "stable-lr-range": "unknown",
              "lr-zero-leaves-p": "proved"},
    "sgdp": {"first-step-magnitude": "refuted", "scale-invariance": "refuted",
             "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "unknown",
             "stable-lr-range": "unknown", "stable-lr-range-momentum": "unknown",
             "lr-zero-leaves-p": "proved"},
    # Ranger takes no step before its rectification threshold (t <= 5 by default): the first
    # step is not lr in size, two steps scale (neither moves p), and the decoupled decay alone
    # acts on the first
    "ranger": {"bias-correction-limit": "proved", "first-step-magnitude": "refuted",
               "scale-invariance": "proved", "zero-grad-fixed-point": "proved",
               "l2-equals-decoupled-decay": "proved", "stable-lr-range": "unknown",
               "no-step-before-rectification": "proved"},
    # AdEMAMix's slow momentum adds alpha*(1 - b3)*g to the first step
    "ademamix": {"bias-correction-limit": "proved", "first-step-magnitude": "refuted",
                 "scale-invariance": "proved", "zero-grad-fixed-point": "proved",
                 "l2-equals-decoupled-decay": "refuted", "stable-lr-range": "unknown",
                 "no-slow-momentum-is-adam": "proved"},
    "signsgd": {"first-step-magnitude": "proved", "scale-invariance": "proved",
                "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "proved",
                "stable-lr-range": "unknown", "stable-lr-range-momentum": "unknown",
                "every-element-moves-by-lr": "proved"},
    # Yogi's moments start at initial_accumulator, not 0: its first step is not sign descent,
    # not scale-invariant, and moves p even for g = 0
    "yogi": {"bias-correction-limit": "proved", "first-step-magnitude": "refuted",
             "scale-invariance": "refuted", "zero-grad-fixed-point": "refuted",
             "l2-equals-decoupled-decay": "proved", "stable-lr-range": "unknown",
             "second-moment-moves-additively": "proved"},
    "sgd": {"first-step-magnitude": "refuted", "scale-invariance": "refuted",
            "zero-grad-fixed-point": "proved", "l2-equals-decoupled-decay": "proved",
            "stable-lr-range": "proved", "stable-lr-range-momentum": "proved",
            "first-step-is-a-gradient-step": "proved"},
}


@pytest.fixture(scope="module")
def catalogue():
    return {report.compiled.name: report for report in map(verify_file, catalogue_paths())}


def test_catalogue_statuses(catalogue):
    got = {name: {r.id: r.status for r in report.results} for name, report in catalogue.items()}
    assert got == EXPECTED


def test_stable_lr_ranges_are_the_textbook_ones(catalogue):
    details = {(name, r.id): r.detail for name, report in catalogue.items() for r in report.results}
    assert details[("sgd", "stable-lr-range")].startswith("converges iff 0 < lr < 2/L")
    assert details[("sgd", "stable-lr-range-momentum")].startswith(
        "converges iff 0 < lr < 2*(momentum + 1)/L")  # heavy ball: 2(1 + beta)/L
    assert details[("nesterov_lookahead", "stable-lr-range-momentum")].startswith(
        "converges iff 0 < lr < 2*(momentum + 1)/(L*(2*momentum + 1))")


def test_every_refutation_has_a_full_counterexample_confirmed_by_numpy(catalogue):
    refuted = [r for report in catalogue.values() for r in report.results if r.status == "refuted"]
    assert refuted
    for result in refuted:
        assert result.counterexample, result
        assert all(v for v in result.counterexample.values())
        assert "the NumPy kernel gives" in result.detail


def test_l2_counterexample_replays_through_the_front_end(catalogue):
    """Independently of the verifier: step adam with the counterexample's numbers."""
    result = next(r for r in catalogue["adam"].results if r.id == "l2-equals-decoupled-decay")
    v = {k: float(eval(x)) for k, x in result.counterexample.items()}  # exact rationals like 7/5

    def one_step(weight_decay):
        p = np.array([v["p"]])
        optgen.optimizer("adam", [p], backend="numpy", lr=v["lr"],
                         weight_decay=weight_decay).step([np.array([v["g"]])])
        return p[0]
    coupled = one_step(v["lam"])
    decoupled = one_step(0.0) - v["lr"] * v["lam"] * v["p"]
    assert abs(coupled - decoupled) > 1e-3


PLANTED = [
    # (claim line, what makes it false)
    ("claim f1: p_new == p", "the step moves p"),
    ("claim f2: m_new >= m", "m decays for g < m"),
    ("claim f3: p_new == p - lr * sign(g)", "0/0 at g = 0, and lr*m/... differs in general"),
    ("claim f4: at t = 1, m = 0: p_new == p - lr * g", "first step is lr*(1-beta)*g"),
    ("claim f5: max(g, 1000) == 1000", "false only for g > 1000, beyond the sampled values"),
    ("claim f6: limit t -> oo: beta^t == 1", "tends to 0 on [0, 1)"),
    ("claim f7: not equivalent to momentum_ema(lr = lr, beta = beta) over 2 steps",
     "it is the same spec"),
    ("claim f8: equivalent to sgd(lr = lr, momentum = beta) over 2 steps", "lr not rescaled"),
    ("claim f9: m_new <= G given m <= G", "g is unbounded"),
    ("claim f10: p_new < p given g > 0", "false at lr = 0 (lr's domain includes 0)"),
    ("claim f11: sqrt(m^2 + 1) - sqrt(m^2 + 2) >= 0", "sqrt is increasing: always negative"),
    ("claim f12: sqrt(g^2) - sqrt(m) >= 0 given m >= 0", "false where m > g^2"),
]


@pytest.mark.parametrize("line, why", PLANTED, ids=[p[0].split(":")[0][6:] for p in PLANTED])
def test_planted_false_claims_are_never_proved(tmp_path, line, why):
    spec = tmp_path / "momentum_ema.opt"
    spec.write_text(textwrap.dedent("""\
        optimizer momentum_ema
        hyper lr = 1e-2     in [0, inf)
        hyper beta = 0.9    in [0, 1)
        state m = 0
        update:
          m = beta * m + (1 - beta) * g
          p = p - lr * m
        """) + line + "\n")
    (tmp_path / "sgd.opt").write_text((catalogue_paths()[0].parent / "sgd.opt").read_text())
    report = verify_file(spec)
    result = next(r for r in report.results if r.own)
    assert result.status in ("refuted", "unknown"), (why, result)
    if result.status == "refuted" and result.counterexample is not None:
        assert "the NumPy kernel gives" in result.detail


def test_planted_true_claims_are_proved(tmp_path):
    """The other side of honesty: true statements written the same ways do get proved."""
    spec = tmp_path / "ema.opt"
    spec.write_text(textwrap.dedent("""\
        optimizer ema
        hyper lr = 1e-2     in [0, inf)
        hyper beta = 0.9    in [0, 1)
        state m = 0
        update:
          m = beta * m + (1 - beta) * g
          p = p - lr * m
        claim t1: at t = 1, m = 0: p_new == p - lr * (1 - beta) * g
        claim t2: m_new <= G given m <= G, g <= G
        claim t3: p_new <= p given m >= 0, g >= 0
        claim t4: limit t -> oo: m_new / (1 - beta^t) == m_new
        claim t5: lr * (sqrt(g^2 + m^2) - sqrt(m^2)) >= 0
        """))
    statuses = {r.id: r.status for r in verify_file(spec).results if r.own}
    assert statuses == {"t1": "proved", "t2": "proved", "t3": "proved", "t4": "proved",
                        "t5": "proved"}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "optgen.cli", "verify", *args],
                          capture_output=True, text=True)


def test_cli_json(catalogue):
    result = run_cli("--json", "sgd", "adam")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"schema", "optgen", "totals", "specs"} and report["schema"] == 1
    assert [s["name"] for s in report["specs"]] == ["sgd", "adam"]
    rows = [(s["name"], c) for s in report["specs"] for c in s["claims"]]
    assert {tuple(sorted(c)) for _, c in rows} == {
        ("claim", "counterexample", "detail", "id", "own", "status", "work")}
    by_key = {(name, c["id"]): c for name, c in rows}
    assert by_key[("adam", "l2-equals-decoupled-decay")]["status"] == "refuted"
    assert by_key[("adam", "l2-equals-decoupled-decay")]["own"] is False
    assert by_key[("sgd", "stable-lr-range")]["status"] == "proved"
    assert sum(report["totals"].values()) == len(rows)
    for name, claim in rows:
        assert claim["status"] in ("proved", "refuted", "unknown", "error")


def test_cli_exit_status_when_own_claim_refuted(tmp_path):
    spec = tmp_path / "wrong.opt"
    spec.write_text("optimizer wrong\nhyper lr = 0.1 in [0, inf)\nupdate:\n  p = p - lr*g\n"
                    "claim moves-nothing: p_new == p\n")
    result = run_cli("--json", str(spec))
    assert result.returncode == 1
    assert "claim 'moves-nothing' is refuted" in result.stderr
    report = json.loads(result.stdout)
    [spec_report] = report["specs"]
    assert spec_report["own_refuted"] == 1 and spec_report["path"] == str(spec)
    claim = next(c for c in spec_report["claims"] if c["id"] == "moves-nothing")
    assert claim["status"] == "refuted" and claim["own"] is True


def test_cli_exit_status_for_invalid_spec(tmp_path):
    spec = tmp_path / "broken.opt"
    spec.write_text("optimizer broken\nupdate:\n  p = p - lrr*g\n")
    result = run_cli(str(spec))
    assert result.returncode == 1
    assert f"{spec}:3:11: undefined name 'lrr'" in result.stderr


def test_markdown_and_html_reports(tmp_path):
    html = tmp_path / "r.html"
    assert run_cli("--format", "html", "-o", str(html), "adam").returncode == 0
    page = html.read_text()
    assert "<math" in page and "l2-equals-decoupled-decay" in page
    assert "http://" not in page and "https://" not in page  # works offline: nothing fetched
    assert "<script" not in page
    markdown = run_cli("--format", "md", "adam").stdout
    assert "| **refuted** | `l2-equals-decoupled-decay` |" in markdown
    assert "\\leftarrow" in markdown


def test_html_report_renders_in_chromium(tmp_path):
    sys.path.insert(0, str(catalogue_paths()[0].parents[1] / "scripts"))
    from report_screenshot import find_chromium, screenshot

    if find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    html = tmp_path / "r.html"
    assert run_cli("--format", "html", "-o", str(html), "sgd").returncode == 0
    png = tmp_path / "r.png"
    screenshot(html, png, height=1600)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_work_budget_gives_unknown_never_proved():
    """Out of budget is unknown, with the reason; nothing becomes proved by running out."""
    adam = next(p for p in catalogue_paths() if p.stem == "adam")
    results = verify_file(adam, budget=50).results
    starved = [r for r in results if "budget" in r.detail]
    assert starved and all(r.status == "unknown" for r in starved)
    assert all(r.work <= 50 for r in starved)


def test_planted_false_schedule_claims(tmp_path):
    spec = tmp_path / "warm.opt"
    spec.write_text(textwrap.dedent("""\
        schedule warm
        hyper base_lr = 1e-3          in [0, inf)
        hyper warmup: int = 100       in [1, inf)
        update:
          lr = t < warmup ? base_lr * t / warmup : base_lr / 2
        claim jumps: at t = warmup: lr == base_lr * t / warmup
        claim vanishes: limit t -> oo: lr == 0
        """))
    statuses = {r.id: r.status for r in verify_file(spec).results}
    assert statuses == {"jumps": "refuted", "vanishes": "refuted"}


def test_equivalence_with_a_spec_that_extends_another(tmp_path):
    """`equivalent to adamw(...)`: adamw extends adam, resolved for the other side too. Adam
    with L2 decay is not AdamW (Loshchilov & Hutter): refuted by a confirmed counterexample."""
    spec = tmp_path / "myadam.opt"
    adam = next(p for p in catalogue_paths() if p.stem == "adam")
    text = adam.read_text().replace("optimizer adam", "optimizer myadam", 1)
    spec.write_text(text + "\nclaim not-adamw: not equivalent to adamw(lr = lr, betas = (b1, b2),"
                    " eps = eps, weight_decay = weight_decay) over 1 steps\n")
    statuses = {r.id: r.status for r in verify_file(spec).results if r.own}
    assert statuses["not-adamw"] == "proved"


def test_the_budget_is_a_count_of_symbolic_work_not_a_clock():
    """Time does not spend the budget (a sleep, or a spin that builds no expression, as other
    processes holding the cores would); SymPy work does, and the same work costs the same
    count whatever the machine is doing, up to a few expressions (SymPy walks some sets in
    memory-address order)."""
    import time

    import sympy as sp
    from sympy.core.cache import clear_cache

    from optgen.compiler.budget import OutOfWork, work_budget

    with work_budget(10, safety_seconds=None):
        time.sleep(0.3)
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
    x = sp.Symbol("x")
    counts = []
    for _ in range(3):  # the first run also fills SymPy's lazily built tables
        clear_cache()
        used = [0]
        with work_budget(10 ** 9, count=used):
            sp.simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1)
        counts.append(used[0])
    assert counts[2] > 100 and abs(counts[1] - counts[2]) <= 0.05 * counts[2]
    with pytest.raises(OutOfWork):
        with work_budget(counts[2] // 2):
            clear_cache()
            sp.simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1)


def test_the_cpu_safety_net_counts_cpu_time_not_the_wall_clock():
    """The safety limit (for work that builds no expression) is CPU time: a sleep does not
    spend it; a spin does."""
    import time

    from optgen.compiler.budget import OutOfWork, work_budget

    with work_budget(None, safety_seconds=0.3):
        time.sleep(0.6)
    with pytest.raises(OutOfWork) as info:
        with work_budget(None, safety_seconds=0.3):
            end = time.process_time() + 5.0
            while time.process_time() < end:
                pass
    assert info.value.kind == "time"


def test_statuses_are_the_same_on_a_busy_machine(catalogue):
    """LAMB's scale-invariance (the catalogue's most expensive proof) and every other LAMB claim
    end the same with both cores held by spinning processes (the budget is a count, not a
    clock; the count itself varies a little between runs — SymPy walks some sets in address
    order — which is not a matter of load and is not asserted here)."""
    import subprocess
    import sys

    lamb = next(p for p in catalogue_paths() if p.stem == "lamb")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy = verify_file(lamb).results
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    idle = catalogue["lamb"].results
    assert [(r.id, r.status) for r in busy] == [(r.id, r.status) for r in idle]
