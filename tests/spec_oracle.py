"""The invariant of issue 11, section 6, for one spec: what ``optgen check`` accepts builds,
imports and steps on 0-d, 1-D, 2-D and 3-D params on every backend, the numpy and cpu backends
agreeing (float64, rtol 1e-10 relative to each array's scale, NaN and infinity positions
equal); everything else is a located :class:`SpecError` at check time, never a traceback of
another kind, at check, build, import or step time.

:func:`run` applies it to a drawn spec (see ``spec_strategies.py``) and says whether the spec
was accepted or refused; a spec that breaks the invariant raises :class:`Violation`.
:func:`run_cuda` (in a process with the CUDA simulator or a GPU) and :func:`run_torch` do the
same for the cuda backend and the PyTorch front end.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np

import optgen
from optgen.compiler.errors import SpecError, SpecErrors
from optgen.compiler.pipeline import check_file
from optgen.runtime.kernels import host_value
from optgen.runtime.loader import load

#: 0-d, 1-D, 2-D and 3-D params, stepped together by one optimizer, and a matrix wide enough
#: for the CPU kernels' row/column loop nest (runtime/kernels.py, NEST_MIN_COLUMNS).
SHAPES = [(), (5,), (3, 4), (2, 3, 4), (2, 70)]
#: A spec with a whole-matrix stage (orthogonalize) steps 2-D params only (runtime/frontend.py).
MATRIX_SHAPES = [(3, 4), (4, 2), (1, 1)]
#: The simulated CUDA backend is slow: fewer elements.
CUDA_SHAPES = [(), (5,), (3, 4), (2, 3, 2)]
STEPS = 3
#: Relative to each array's scale (its largest finite magnitude, at least 1).
RTOL = 1e-10
#: A wrapper spec (``wraps inner``) runs after this catalogue optimizer.
INNER = "sgd"


class Violation(AssertionError):
    """The spec broke the invariant: ``stage`` is where (check, build, step, compare)."""

    def __init__(self, stage: str, detail: str):
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.detail = detail


def spec_errors(error: SpecError) -> list[SpecError]:
    return list(error.errors) if isinstance(error, SpecErrors) else [error]


def check_located(error: SpecError, text: str, path: Path | None = None) -> None:
    """Every error carries a line and a column within the spec's text (in its own file: the
    bases a drawn spec extends are catalogue specs, valid on their own)."""
    lines = text.split("\n")
    for e in spec_errors(error):
        span = e.span
        if path is not None and e.filename != str(path):
            raise Violation("check", f"an error located in another file, {e.filename}: {e}")
        if span is None:
            raise Violation("check", f"an error without a location: {e.message}")
        if not (1 <= span.line <= len(lines) and 1 <= span.column <= len(lines[span.line - 1]) + 1):
            raise Violation("check", f"an error located outside the spec (line {span.line}, "
                                     f"column {span.column}): {e.message}")


def run(spec, folder: Path, backends=("numpy", "cpu"), seed: int = 0) -> str:
    """``"refused"`` (a located error), ``"accepted"`` (it built and stepped on ``backends``
    under the defaults and with its flags and choices changed, the backends agreeing) or
    ``"sensitive"`` (accepted, the backends differing only where the reference is as
    sensitive to rounding: see :func:`compare`); raises :class:`Violation` otherwise."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fz.opt"
    path.write_text(spec.text)
    try:
        check_file(path)
    except SpecError as error:
        check_located(error, spec.text, path)
        return "refused"
    except Exception:  # noqa: BLE001 - anything else is what the invariant forbids
        raise Violation("check", traceback.format_exc()) from None
    if spec.kind == "schedule":
        _schedule(path)
        return "accepted"
    if not backends:
        return "accepted"
    sensitive = False
    for hypers in ({}, flipped(path)):  # the defaults, then other flags and choices
        if hypers is None:
            continue
        results = {backend: _steps(path, spec, backend, seed, hypers=hypers)
                   for backend in backends}
        reference = results[backends[0]]

        def noise(hypers=hypers):
            return [_steps(path, spec, backends[0], seed, hypers=hypers, change=change)
                    for change in ("reverse", "perturb")]

        for backend in backends[1:]:
            sensitive |= compare(results[backend], reference, f"{backend} against "
                                 f"{backends[0]}" + (f" with {hypers}" if hypers else ""), noise)
    return "sensitive" if sensitive else "accepted"


def flipped(path: Path) -> dict | None:
    """Other values for the spec's flags and choices (each bool negated, each choice the
    next string), which select other pass variants; None where there are none, or they break
    a requirement."""
    module = load(str(path))
    hypers = {}
    for h in module.HYPERS:
        if h.type == "bool":
            hypers[h.name] = not h.default
        elif h.type == "choice" and len(h.choices) > 1:
            hypers[h.name] = h.choices[(h.choices.index(h.default) + 1) % len(h.choices)]
    if not hypers:
        return None
    values = {h.name: h.coerce(hypers.get(h.name, h.default)) for h in module.HYPERS}
    flat = [host_value(v) for h in module.HYPERS for v in h.flat(values[h.name])]
    with np.errstate(all="ignore"):
        if module.violated_requirements(*flat):
            return None
    return hypers


def _schedule(path: Path) -> None:
    try:
        schedule = optgen.schedule(str(path))
        for t in range(6):
            value = schedule(t)
            if not isinstance(value, float):
                raise Violation("step", f"lr at t = {t} is {value!r}, not a float")
    except Violation:
        raise
    except Exception:  # noqa: BLE001
        raise Violation("step", traceback.format_exc()) from None


def _steps(path: Path, spec, backend: str, seed: int, shapes=SHAPES,
           hypers: dict | None = None, change: str | None = None) -> dict[str, np.ndarray]:
    """Every param and state after STEPS steps from the same start and gradients (one param
    skipped, its gradient None, at the second step). ``change`` "reverse": every array
    reversed along every axis (and the results back), "perturb": params, gradients and inputs
    times 1 + 2^-43."""
    rng = np.random.default_rng(seed)
    order = (lambda a: np.array(np.flip(a))) if change == "reverse" else (lambda a: a)
    scale = (lambda a: np.asarray(np.asarray(a) * (1 + 2.0 ** -43))) if change == "perturb" \
        else np.asarray
    extra = {"inner": INNER} if spec.kind == "wrapper" else {}
    if backend == "cuda":
        from numba import cuda
        device, host = cuda.to_device, (lambda a: a.copy_to_host())
    else:
        device, host = (lambda a: a), (lambda a: a)
    stage = "build"
    try:
        if load(str(path)).MATRIX_OPS:  # a whole-matrix stage steps 2-D params only
            shapes = MATRIX_SHAPES
        def draw(shape, positive=False):
            value = rng.standard_normal(shape)
            return device(order(scale(np.abs(value) if positive else value)))

        params = [draw(shape) for shape in shapes]
        opt = optgen.optimizer(str(path), params, backend=backend, **extra, **(hypers or {}))
        stage = "step"
        for step in range(STEPS):
            grads = [draw(shape) for shape in shapes]
            if step == 1:
                grads[-1] = None
            inputs = {name: [draw(shape, positive=True) if (step + k) % 3 else None
                             for k, shape in enumerate(shapes)] for name in spec.inputs}
            opt.step(grads, **inputs)
        stage = "state_dict"
        out = {f"params[{i}]": order(np.array(host(p))) for i, p in enumerate(params)}
        if spec.kind != "wrapper":
            for i, state in enumerate(opt.state_dict()["state"]):
                for key, value in state.items():
                    value = np.asarray(value, dtype=np.float64)
                    out[f"state[{i}][{key!r}]"] = order(value) if value.ndim else value
    except Exception:  # noqa: BLE001
        raise Violation(f"{stage} ({backend})", traceback.format_exc()) from None
    return out


def steps_torch(path: Path, spec, seed: int = 0, shapes=SHAPES,
                hypers: dict | None = None) -> dict[str, np.ndarray]:
    """:func:`_steps` through the PyTorch front end (``optgen.torch``, CPU tensors): params and
    states but the step count (a float32 tensor there, an int in the NumPy front end)."""
    import torch

    import optgen.torch as ot

    rng = np.random.default_rng(seed)
    stage = "build (torch)"
    try:
        if load(str(path)).MATRIX_OPS:
            shapes = MATRIX_SHAPES
        params = [torch.nn.Parameter(torch.from_numpy(np.asarray(rng.standard_normal(shape))))
                  for shape in shapes]
        opt = ot.optimizer(str(path), params, **(hypers or {}))
        stage = "step (torch)"
        for step in range(STEPS):
            for p, shape in zip(params, shapes):
                p.grad = torch.from_numpy(np.asarray(rng.standard_normal(shape)))
            if step == 1:
                params[-1].grad = None
            inputs = {name: [torch.from_numpy(np.asarray(np.abs(rng.standard_normal(shape))))
                             if (step + k) % 3 else None for k, shape in enumerate(shapes)]
                      for name in spec.inputs}
            opt.step(**inputs)
        out = {f"params[{i}]": p.detach().numpy().copy() for i, p in enumerate(params)}
        for i, p in enumerate(params):
            for key, value in opt.state[p].items():
                if key != "step":
                    out[f"state[{i}][{key!r}]"] = np.asarray(
                        value.numpy() if isinstance(value, torch.Tensor) else value,
                        dtype=np.float64)
    except Exception:  # noqa: BLE001
        raise Violation(stage, traceback.format_exc()) from None
    return out


def run_torch(spec, folder: Path, seed: int = 0) -> str:
    """:func:`run`, then the PyTorch front end against the NumPy one (cpu backend)."""
    outcome = run(spec, folder, backends=())
    if outcome == "accepted" and spec.kind == "optimizer":
        path = Path(folder) / "fz.opt"
        for hypers in ({}, flipped(path)):
            if hypers is None:
                continue
            want = {k: v for k, v in _steps(path, spec, "cpu", seed, hypers=hypers).items()
                    if not k.endswith("['step']")}
            compare(steps_torch(path, spec, seed, hypers=hypers), want,
                    "torch against cpu" + (f" with {hypers}" if hypers else ""))
    return outcome


def differences(got: dict, want: dict, what: str) -> dict[str, np.ndarray]:
    """Each array's elements where ``got`` and ``want`` disagree: NaN or an infinity at one
    place only, or finite values further apart than RTOL of ``want``'s scale (its largest
    finite magnitude, at least 1). Other states or shapes are a Violation."""
    if got.keys() != want.keys():
        raise Violation("compare", f"{what}: different states {sorted(got)} != {sorted(want)}")
    out = {}
    for key in want:
        a, b = np.asarray(got[key]), np.asarray(want[key])
        if a.shape != b.shape:
            raise Violation("compare", f"{what}: {key} has shape {a.shape}, not {b.shape}")
        finite = np.isfinite(b)
        scale = max(1.0, float(np.max(np.abs(b[finite]), initial=0.0)))
        with np.errstate(all="ignore"):
            far = np.where(finite & np.isfinite(a), np.abs(a - b) > RTOL * scale, False)
        mask = far | (np.isnan(a) != np.isnan(b)) | (np.isposinf(a) != np.isposinf(b)) | (
            np.isneginf(a) != np.isneginf(b))
        if mask.any():
            out[key] = mask
    return out


def compare(got: dict, want: dict, what: str, noise=None) -> bool:
    """Raise a Violation where ``got`` and ``want`` differ, unless ``noise()`` explains it:
    the reference's own results under changes that leave the mathematics alone (every array
    reversed along every axis, so sums add in another order; inputs changed in the 13th
    digit). An element where those move the reference as far is one the spec makes
    sensitive to rounding (``x % sum(1e-8)``, ``floor(log(exp(2)))``): the two backends'
    roundings differ there (NumPy's exp and log are not Numba's, nor its sums), and that is
    not a fault. True when the difference was explained so."""
    found = differences(got, want, what)
    if not found:
        return False
    sensitive = {key: np.zeros_like(mask) for key, mask in found.items()}
    for other in (noise() if noise is not None else ()):
        for key, mask in differences(other, want, what).items():
            if key in sensitive:
                sensitive[key] |= mask
    for key, mask in found.items():
        unexplained = mask & ~sensitive[key]
        if unexplained.any():
            a, b = np.asarray(got[key]), np.asarray(want[key])
            where = np.argwhere(unexplained).tolist()[:5]
            raise Violation("compare", f"{what}: {key} differs at {where}\n"
                                       f"got  {a!r}\nwant {b!r}")
    return True


def run_cuda(spec, folder: Path, seed: int = 0) -> str:
    """:func:`run` for the cuda backend against numpy, on :data:`CUDA_SHAPES`: in a process
    where Numba's CUDA target is a GPU or its simulator (``NUMBA_ENABLE_CUDASIM=1``, set
    before numba.cuda is first imported)."""
    outcome = run(spec, folder, backends=())
    if outcome == "accepted" and spec.kind != "schedule":
        path = Path(folder) / "fz.opt"
        want = _steps(path, spec, "numpy", seed, CUDA_SHAPES)

        def noise():
            return [_steps(path, spec, "numpy", seed, CUDA_SHAPES, change=change)
                    for change in ("reverse", "perturb")]

        if compare(_steps(path, spec, "cuda", seed, CUDA_SHAPES), want, "cuda against numpy",
                   noise):
            return "sensitive"
    return outcome


def main(argv=None) -> int:
    """``python tests/spec_oracle.py --cuda SPECS.json OUT.json``: :func:`run_cuda` on each
    spec of SPECS.json (a list of Spec fields), writing each outcome or violation to OUT.json
    (run it with NUMBA_ENABLE_CUDASIM=1 where there is no GPU)."""
    import json
    import sys
    import tempfile

    from spec_strategies import Spec

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "--cuda":
        print(main.__doc__, file=sys.stderr)
        return 2
    specs = [Spec(**fields) for fields in json.loads(Path(args[1]).read_text())]
    results = []
    with tempfile.TemporaryDirectory() as work:
        for k, spec in enumerate(specs):
            try:
                results.append({"outcome": run_cuda(spec, Path(work) / f"spec{k}")})
            except Violation as violation:
                results.append({"outcome": "violation", "stage": violation.stage,
                                "detail": violation.detail})
    Path(args[2]).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
