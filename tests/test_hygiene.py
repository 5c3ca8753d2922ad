"""Nothing a spec says becomes code, and no spec name can meet a name of the generated code's own.

* Spec names are printed as ``name_`` and loaded values as ``_name_``; no other identifier of a
  generated module ends with ``_`` (checked on every catalogue module and on the specs below).
* One spec whose names are the generated code's own — plan temporaries without their ``_``
  (``h0``, ``r0``, ``e0``, ``i``, ``row``), builtins (``range``, ``min``, ``sum``, ``float``),
  modules and module globals (``numpy``, ``math``, ``cuda``, ``address_as_pointer``,
  ``REDUCE_BLOCK``, ``broken``) — gives the same bits as the same spec with neutral names: on the
  ``numpy`` and ``cpu`` backends, and with the CUDA kernels under Numba's simulator (a
  subprocess). Bit for bit, since only identifiers differ. A factored spec (the CPU's
  row/column loop nest) does the same.
* Hostile file names (code in quotes, a newline, bytes that are not UTF-8) and text in
  descriptions reach the module only as literals.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import optgen
from optgen.compiler.errors import SpecError
from optgen.compiler.names import code_name, local_name
from optgen.compiler.pipeline import check_file, compile_file

# A spec with slots; every slot is a name that reaches generated code.
ELEMENT_SPEC = '''\
optimizer {spec}
  "every name here is one the generated code uses for itself"
hyper {lr} = 0.01 in [0, inf) "step size"
hyper {betas} = (0.9, 0.99) as ({b1}, {b2}) in [0, 1)
hyper {eps} = 1e-8 in [0, inf)
hyper {wd} = 0.1 in [0, inf)
hyper {flag} = true
hyper {mode} = "a" in {{"a", "b"}}
hyper {ms} = [2, 4]
hyper {k} : int = 3 in [1, inf)
require {b1} < 0.99 and {eps} >= 0, "b1 below 0.99"
state {m} = 0
state {v} = 0
state {vmax} = 0 if {flag}
state {z} = p
state {s1} = 0
state {s2} = 0
state {s3} = 0
state {s4} = 0
state {s5} = 0
state {s6} = 0
state {s7} = 0
state {s8} = 0
scalar {acc} = 1
input {h}
update:
  {acc} = {acc} * {b1}
  {m} = {b1} * {m} + (1 - {b1}) * g
  {v} = {b2} * {v} + (1 - {b2}) * g * g
  {vmax} = max({vmax}, {v}) if {flag}
  {den} = sqrt({flag} ? {vmax} : {v}) + {eps}
  {hv} = has_{h} ? {h} : 0
  {nrm} = norm(p)
  {tr} = {nrm} > 0 ? {nrm} / (norm({m} / {den}) + 1) : 1
  {z} = 0.5 * {z} + 0.5 * p
  {s1} = {s1} + g
  {s2} = {s2} * 0.5 + {s1}
  {s3} = {s3} + {s2} / {k}
  {s4} = {s4} - {s3}
  {s5} = {s5} + abs({s4})
  {s6} = {s6} + {s5} * {s1}
  {s7} = max({s7}, {s6})
  {s8} = min({s8}, -{s7})
  {step} = ({mode} == "a" ? {lr} : {lr} / 2) * 0.5 ^ count_le({ms}, t) / (1 - {acc})
  p = p - {step} * ({tr} * {m} / {den} + {wd} * p + {hv}) + 1e-3 * ({z} - p) + 1e-6 * {s8}
'''

HOSTILE = dict(
    spec="cuda", lr="range", betas="HyperSpec", b1="h0", b2="h1", eps="numpy", wd="broken",
    flag="address_as_pointer", mode="math", ms="v", k="sum", m="i", v="r0", vmax="e0",
    z="c", s1="row", s2="x0", s3="mat0", s4="ax0", s5="REDUCE_BLOCK", s6="CUDA_THREADS",
    s7="numba", s8="min", acc="float", h="kernels", den="c0", hv="y0", nrm="n", tr="len",
    step="step_cpu")
NEUTRAL = {slot: f"q{k}" for k, slot in enumerate(HOSTILE)}

FACTORED_SPEC = '''\
optimizer {spec}
hyper {lr} = 0.01 in [0, inf)
state {r} = 0 per-row if factored
state {c} = 0 per-col if factored
state {v} = 0 if not factored
update:
  {r} = 0.9 * {r} + 0.1 * row_mean(g^2) if factored
  {c} = 0.9 * {c} + 0.1 * col_mean(g^2) if factored
  {v} = 0.9 * {v} + 0.1 * g^2 if not factored
  {w} = factored ? {r} * {c} / max(col_mean({r}), 1e-30) : {v}
  p = p - {lr} * g / sqrt({w} + 1e-16)
'''
FACTORED_HOSTILE = dict(spec="row", lr="ncols", r="base", c="m", v="nrows", w="c")
FACTORED_NEUTRAL = {slot: f"q{k}" for k, slot in enumerate(FACTORED_HOSTILE)}

SHAPES = {"element": [(3, 4), (7,), ()], "factored": [(2, 3, 64), (5,)]}
SPECS = {"element": (ELEMENT_SPEC, HOSTILE, NEUTRAL),
         "factored": (FACTORED_SPEC, FACTORED_HOSTILE, FACTORED_NEUTRAL)}


def _write(folder: Path, kind: str, hostile: bool) -> Path:
    text, bad, good = SPECS[kind]
    names = bad if hostile else good
    path = folder / f"{kind}-{'hostile' if hostile else 'neutral'}.opt"
    path.write_text(text.format(**names))
    return path


# Run in the test process (numpy, cpu) and in a simulator subprocess (cuda): 3 steps, then the
# params' and states' bytes in slot order, so the two spellings compare bit for bit.
RUN = textwrap.dedent('''
    import json, sys
    import numpy as np
    import optgen

    def run(path, shapes, backend, state_order):
        rng = np.random.default_rng(0)
        params = [rng.standard_normal(s) for s in shapes]
        if backend == "cuda":
            from numba import cuda
            arrays = [cuda.to_device(p) for p in params]
        else:
            arrays = params
        opt = optgen.optimizer(path, arrays, backend=backend)
        for step in range(3):
            grads = [rng.standard_normal(s) for s in shapes]
            if backend == "cuda":
                grads = [cuda.to_device(g) for g in grads]
            inputs = {name: grads for name in opt._module.INPUTS} if step != 1 else {}
            opt.step(grads, **inputs)
        if backend == "cuda":
            params = [a.copy_to_host() for a in arrays]
        out = [p.tobytes().hex() for p in params]
        for state in opt.state_dict()["state"]:
            keys = [k for k in state_order if k in state]
            out.append([np.asarray(state[k]).tobytes().hex() for k in keys])
        return out

    if __name__ == "__main__":
        jobs = json.loads(sys.argv[1])
        json.dump([run(*job) for job in jobs], sys.stdout)
''')
_scope: dict = {}
exec(compile(RUN, "<hygiene run>", "exec"), _scope)


def _state_order(kind: str, names: dict) -> list[str]:
    """The states' names (and "step") in slot order: the same order for both spellings."""
    text = SPECS[kind][0]
    slots = [line.split()[1].strip("{}") for line in text.splitlines()
             if line.startswith(("state ", "scalar "))]
    return ["step"] + [names[slot] for slot in slots]


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hygiene")
    return {(kind, hostile): _write(folder, kind, hostile)
            for kind in SPECS for hostile in (True, False)}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTGEN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("kind", list(SPECS))
def test_internal_names_give_the_bits_of_neutral_names(specs, kind, backend):
    _, bad, good = SPECS[kind]
    hostile = _scope["run"](str(specs[kind, True]), SHAPES[kind], backend, _state_order(kind, bad))
    neutral = _scope["run"](str(specs[kind, False]), SHAPES[kind], backend,
                            _state_order(kind, good))
    assert hostile == neutral
    assert len(hostile) > len(SHAPES[kind])  # states were compared too


def test_internal_names_give_the_bits_of_neutral_names_in_cuda_kernels(specs, tmp_path):
    """The CUDA kernels, in Numba's simulator (chosen at import: a subprocess)."""
    jobs = []
    for kind, (_, bad, good) in SPECS.items():
        for hostile, names in ((True, bad), (False, good)):
            jobs.append((str(specs[kind, hostile]), SHAPES[kind], "cuda",
                         _state_order(kind, names)))
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "OPTGEN_CACHE_DIR": str(tmp_path / "c")}
    script = tmp_path / "run.py"
    script.write_text(RUN)
    result = subprocess.run([sys.executable, str(script), json.dumps(jobs)], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout)
    assert runs[0] == runs[1] and runs[2] == runs[3]
    numpy_bits = _scope["run"](*jobs[1][:2], "numpy", jobs[1][3])
    np.testing.assert_allclose(  # and the simulator agrees with the NumPy backend
        np.frombuffer(bytes.fromhex(runs[1][0])), np.frombuffer(bytes.fromhex(numpy_bits[0])),
        rtol=1e-12)


def test_public_names_stay_the_specs_own(specs):
    module = optgen.runtime.loader.load(specs["element", True])
    assert module.NAME == "cuda"
    assert module.HYPER_ARGS[:3] == ("range", "h0", "h1")
    assert "i" in module.STATES and "e0" in module.STATES and module.SCALARS == ("float",)
    assert module.INPUTS == ("kernels",)
    p = np.ones(3)
    opt = optgen.optimizer(specs["element", True], [p], backend="numpy", range=0.5)
    assert opt.hypers["range"] == 0.5 and opt.hypers["HyperSpec"] == (0.9, 0.99)
    opt.step([np.ones(3)], kernels=[np.ones(3)])
    assert set(opt.state_dict()["state"][0]) >= {"i", "r0", "e0", "float"}
    with pytest.raises(ValueError, match="b1 below 0.99"):  # the require reads hyper 'broken' too
        opt.set(HyperSpec=(0.995, 0.5))


def _identifiers(source: str) -> set[str]:
    """Every name the module binds or reads (not attributes)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Global):
            out.update(node.names)
        elif isinstance(node, ast.alias):
            out.add(node.asname or node.name.split(".")[0])
    return out


def _spec_names(module) -> set[str]:
    def names(attribute):
        return set(getattr(module, attribute, ()))  # a schedule has hypers only
    return ({"p", "g", "t"} | names("HYPER_ARGS") | names("ARRAYS") | names("SCALARS")
            | names("GROUP_SCALARS")
            | {f"has_{name}" for name in names("INPUTS")}
            | {n for n, _ in getattr(module, "AXIS_STATES", ())})


def _assert_hygienic(module) -> None:
    names = _spec_names(module)
    allowed = {code_name(n) for n in names} | {local_name(n) for n in names}
    source = Path(module.__file__).read_text()
    stray = {name for name in _identifiers(source)
             if name.endswith("_") and not name.startswith("__") and name not in allowed}
    assert not stray, f"{module.NAME}: identifiers in the spec namespace that are no spec's: {stray}"


@pytest.mark.parametrize("name", optgen.available())
def test_catalogue_modules_keep_the_namespaces_apart(name):
    _assert_hygienic(optgen.runtime.loader.load(name))


def test_hostile_specs_keep_the_namespaces_apart(specs):
    for path in specs.values():
        _assert_hygienic(optgen.runtime.loader.load(path))


# --- text that reaches the module -----------------------------------------------------------

SIMPLE = 'optimizer {name}\n  "{text}"\nhyper lr = 0.1\nupdate:\n  p = p - lr * g\n'

HOSTILE_FILE_NAMES = [
    'x""" if __import__("os").system("id>PWNED") else """.opt',
    "x'''\n__import__('os').system('id>PWNED')\n'''.opt",
    "line\nbreak\\.opt",
    "quote\".opt",
]


@pytest.mark.parametrize("file_name", HOSTILE_FILE_NAMES)
def test_file_names_enter_the_module_as_text(tmp_path, file_name):
    """The docstring names the file; loading the module runs nothing (a subprocess in a folder
    of its own, so a regression could only write PWNED there)."""
    path = tmp_path / file_name
    path.write_text(SIMPLE.format(name="plain", text="ok"))
    probe = ("import sys, optgen; m = optgen.runtime.loader.load(sys.argv[1]); "
             "print(repr(m.__doc__.splitlines()[0]))")
    run = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "OPTGEN_CACHE_DIR": str(tmp_path / "c")},
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not (tmp_path / "PWNED").exists()
    assert file_name.split("\n")[0] in ast.literal_eval(run.stdout.strip())
    docstring = ast.get_docstring(ast.parse(compile_file(path).source), clean=False)
    assert f"from {file_name}. Do not edit." in docstring


def test_a_file_name_that_is_not_utf8(tmp_path):
    name = os.fsdecode(b"bad\xff\xfe.opt")  # surrogate escapes: not encodable as UTF-8
    path = tmp_path / name
    try:
        path.write_text(SIMPLE.format(name="plain", text="ok"))
    except (OSError, UnicodeError):
        pytest.skip("the file system refuses the name")
    source = compile_file(path).source
    source.encode("utf-8")  # the module's text is valid UTF-8 (the name is escaped)
    assert ast.get_docstring(ast.parse(source), clean=False).startswith(
        f"plain: generated by optgen {optgen.__version__} from {name}.")
    module = optgen.runtime.loader.load(path)
    assert module.NAME == "plain"


@pytest.mark.parametrize("text", [
    r'\"\"\"', r"\\", r'end with a quote \"', r"tab\tand\nnewline", "unicode \u00e9\u2013\u4e2d",
])
def test_descriptions_round_trip(tmp_path, text):
    path = tmp_path / "d.opt"
    path.write_text(SIMPLE.format(name="described", text=text))
    module = optgen.runtime.loader.load(path)
    expected = ast.literal_eval('"' + text + '"')
    assert module.DESCRIPTION == expected


# --- names that cannot be names ---------------------------------------------------------------

@pytest.mark.parametrize("header, message", [
    ("optimizer __init__", "spec name '__init__' is reserved"),  # would be generated/__init__.py
    ("optimizer _x", "spec name '_x' is reserved"),
    ("optimizer lambda", "spec name 'lambda' is reserved"),
    ("optimizer " + "a" * 250, "spec name is 250 characters long; the limit is 80"),
])
def test_spec_names_that_cannot_name_a_module(tmp_path, header, message):
    path = tmp_path / "s.opt"
    path.write_text(header + "\nhyper lr = 0.1\nupdate:\n  p = p - lr * g\n")
    with pytest.raises(SpecError) as info:
        check_file(path)
    text = str(info.value)
    assert text.startswith(f"{path}:1:11: {message}")
    assert "\n              ^" in text  # the line and a caret under the name


@pytest.mark.parametrize("line, message", [
    ("hyper " + "b" * 250 + " = 1", "name is 250 characters long"),
    ("hyper _lr = 1", "name '_lr' is reserved"),
    ("state lambda = 0", "name 'lambda' is reserved"),
])
def test_declared_names_that_cannot_be_names(tmp_path, line, message):
    path = tmp_path / "s.opt"
    path.write_text(f"optimizer ok\nhyper lr = 0.1\n{line}\nupdate:\n  p = p - lr * g\n")
    with pytest.raises(SpecError) as info:
        check_file(path)
    assert message in str(info.value)
    assert f"{path}:3:" in str(info.value)
