"""The CUDA backend.

* Every catalogue optimizer's CUDA kernels, run by Numba's CUDA simulator
  (``NUMBA_ENABLE_CUDASIM=1``, in a subprocess: the simulator is chosen when numba.cuda is first
  imported), against the ``numpy`` backend: 2 steps, float64 and float32, shapes (3, 4), (5,),
  (), (0,) and (2, 3, 2) (2-D only for Muon); params and states. Tolerances: float64
  rtol 1e-12 / atol 1e-14, float32 rtol 1e-5 / atol 1e-6 (the CUDA sums add in a tree).
* A clear error where CUDA is asked for and neither a GPU nor the simulator is there.
* On a real GPU only (skipped elsewhere): optgen.torch on CUDA tensors against the CPU backend,
  and the many-tensor kernel's single launch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import optgen

SIMULATOR_RUN = textwrap.dedent('''
    import json, sys
    import numpy as np
    from numba import cuda
    import optgen

    SHAPES = [(3, 4), (5,), (), (0,), (2, 3, 2)]
    out = {}
    for name in optgen.available("optimizer") + optgen.available("wrapper"):
        for dtype in (np.float64, np.float32):
            rng = np.random.default_rng(0)
            shapes = [(3, 4), (4, 2)] if name == "muon" else SHAPES
            start = [rng.standard_normal(s).astype(dtype) for s in shapes]
            ref = [p.copy() for p in start]
            dev = [cuda.to_device(p.copy()) for p in start]
            extra = {"inner": "adam"} if name == "lookahead" else {}
            if name == "lookahead":
                extra["k"] = 2
            opt = optgen.optimizer(name, dev, backend="cuda", **extra)
            base = optgen.optimizer(name, ref, backend="numpy", **extra)
            for step in range(2):
                grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
                opt.step([cuda.to_device(g) for g in grads])
                base.step(grads)
            got = [d.copy_to_host() for d in dev]
            states = [{k: np.asarray(v).tolist() for k, v in s.items() if k != "step"}
                      for s in opt.state_dict()["state"]] if name != "lookahead" else []
            want = [{k: np.asarray(v).tolist() for k, v in s.items() if k != "step"}
                    for s in base.state_dict()["state"]] if name != "lookahead" else []
            out[f"{name}-{np.dtype(dtype).name}"] = {
                "got": [g.tolist() for g in got], "want": [r.tolist() for r in ref],
                "states": states, "want_states": want}
    json.dump(out, sys.stdout)
''')


def _catalogue_run(simulator: bool) -> dict:
    env = dict(os.environ)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    else:
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    run = subprocess.run([sys.executable, "-c", SIMULATOR_RUN], capture_output=True, text=True,
                         env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def simulated():
    return _catalogue_run(simulator=True)


TOLERANCE = {"float64": dict(rtol=1e-12, atol=1e-14), "float32": dict(rtol=1e-5, atol=1e-6)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", optgen.available("optimizer") + optgen.available("wrapper"))
def test_simulated_cuda_kernels_match_numpy_backend(simulated, name, dtype):
    case = simulated[f"{name}-{dtype}"]
    for i, (got, want) in enumerate(zip(case["got"], case["want"])):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), **TOLERANCE[dtype],
                                   err_msg=f"params[{i}]")
    for got, want in zip(case["states"], case["want_states"]):
        assert got.keys() == want.keys()
        for key in got:
            np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]),
                                       **TOLERANCE[dtype], err_msg=key)


def _nvvm() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM"):
        return False
    try:
        from numba.cuda.cudadrv import nvvm
        return nvvm.is_available()
    except Exception:
        return False


def _signature(module, kind: str, dtype):
    """The Numba types a kernel is launched with (arrays C-contiguous, host scalars typed)."""
    from numba import types

    f = types.float32 if dtype == np.float32 else types.float64
    array, table = types.Array(f, 1, "C"), types.Array(types.int64, 2, "C")
    host = [types.boolean if is_bool else f for is_bool in module.HOST_IS_BOOL]
    arrays = [array] * (len(module.ARRAYS) + len(module.AXIS_ARRAYS))
    mats = [array] * len(module.MATRIX_OPS)
    partials = types.Array(types.float64, 2, "C")
    shapes = [f] * len(module.SHAPE_VALUES)
    channels = ([types.Array(f, 2, "C"), types.int64, types.int64]
                if "channel" in module.REDUCE_KINDS else [])
    if kind.endswith("_total"):  # a reduction pass's blocks, added
        return [partials, array]
    if kind.startswith("reduce_channels"):
        return arrays + host + shapes + [array] + channels
    if kind.startswith("reduce"):  # every reduction pass: reduce, reduce_1, ...
        return arrays + host + shapes + [array] + channels + [partials]
    return {
        "step": arrays + mats + host + shapes + [array] + channels,
        "prepare": arrays + mats + host,
        "step_many": [table, table, array, types.int64] + host + [types.Array(f, 2, "C")],
    }[kind]


@pytest.mark.skipif(not _nvvm(), reason="NVVM (cuda-toolkit[nvvm,nvrtc]) is not installed")
@pytest.mark.parametrize("name", optgen.available("optimizer"))
def test_every_cuda_kernel_compiles_to_ptx_for_hopper(name):
    """Without a GPU, the GPU code is still compiled for real: every kernel of every optimizer,
    float32 and float64, lowers through NVVM to PTX for sm_90 (H100), and the float32 element
    kernels contain no float64 arithmetic (nothing promotes float32 to float64)."""
    import re

    from numba import cuda

    from optgen.runtime.loader import load

    module = load(name)
    for kind, kernel in module.cuda_kernels().items():
        for dtype in (np.float32, np.float64):
            ptx, _ = cuda.compile_ptx(kernel.py_func, tuple(_signature(module, kind, dtype)),
                                      cc=(9, 0))
            assert ".entry" in ptx
            if dtype == np.float32 and kind in ("step", "step_many", "prepare"):
                assert not re.search(r"\.f64\b", ptx), f"{kind} computes in float64"


def test_clear_error_without_a_gpu_or_simulator():
    code = ("import numpy as np, optgen\n"
            "try:\n"
            "    optgen.optimizer('adam', [np.ones(3)], backend='cuda')\n"
            "except RuntimeError as e:\n"
            "    print(e)\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU, even where one is
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "backend='cuda' needs" in run.stdout


def _gpu() -> bool:
    try:
        from optgen.runtime.cuda import available, simulated as is_simulated
        return available() and not is_simulated()
    except Exception:
        return False


gpu = pytest.mark.skipif(not _gpu(), reason="no CUDA GPU here")


@pytest.fixture(scope="module")
def on_gpu():
    return _catalogue_run(simulator=False)


@gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", optgen.available("optimizer") + optgen.available("wrapper"))
def test_gpu_kernels_match_numpy_backend(on_gpu, name, dtype):
    test_simulated_cuda_kernels_match_numpy_backend(on_gpu, name, dtype)


@gpu
@pytest.mark.parametrize("name, hypers", [("adam", {"amsgrad": True}), ("sgd", {"momentum": 0.9}),
                                          ("lamb", {}), ("adafactor", {}), ("lion", {})])
def test_torch_cuda_tensors_match_the_cpu(name, hypers):
    torch = pytest.importorskip("torch")
    import optgen.torch as ot

    rng = np.random.default_rng(0)
    shapes = [(64, 33), (1000,), (), (3, 4, 5)]
    start = [torch.tensor(rng.standard_normal(s), dtype=torch.float32) for s in shapes]
    cpu = [p.clone().requires_grad_() for p in start]
    gpu_params = [p.cuda().requires_grad_() for p in start]
    a, b = ot.optimizer(name, cpu, **hypers), ot.optimizer(name, gpu_params, **hypers)
    for _ in range(5):
        grads = [torch.tensor(rng.standard_normal(s), dtype=torch.float32) for s in shapes]
        for p, g in zip(cpu, grads):
            p.grad = g.clone()
        for p, g in zip(gpu_params, grads):
            p.grad = g.cuda()
        a.step()
        b.step()
    for x, y in zip(cpu, gpu_params):
        np.testing.assert_allclose(y.detach().cpu().numpy(), x.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


@gpu
def test_torch_cuda_many_tensors_take_one_launch(monkeypatch):
    torch = pytest.importorskip("torch")
    import optgen.torch as ot
    from optgen.runtime import cuda as runtime_cuda

    launches = []
    original = runtime_cuda.CudaTable.run
    monkeypatch.setattr(runtime_cuda.CudaTable, "run",
                        lambda self, *a, **k: (launches.append(1), original(self, *a, **k)))
    params = [torch.zeros(n + 1, device="cuda", requires_grad=True) for n in range(100)]
    opt = ot.Adam(params, lr=0.1)
    for _ in range(3):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
    assert len(launches) == 3
    expected = torch.full((1,), -0.1 * 3, device="cuda")  # Adam's first steps move by lr
    torch.testing.assert_close(params[0].detach(), expected, rtol=1e-4, atol=1e-5)


def test_cuda_front_end_names_bad_arguments():
    """Under the simulator: host arrays, wrong shapes and unknown inputs are clear errors."""
    code = textwrap.dedent('''
        import numpy as np, optgen
        from numba import cuda
        def message(call):
            try:
                call()
            except (TypeError, ValueError) as e:
                return f"{type(e).__name__}: {e}"
            return "no error"
        p = cuda.to_device(np.ones(3))
        print(message(lambda: optgen.optimizer("adam", [np.ones(3)], backend="cuda")))
        opt = optgen.optimizer("adam", [p], backend="cuda")
        print(message(lambda: opt.step([cuda.to_device(np.ones(4))])))
        print(message(lambda: opt.step([np.ones(3)])))
        print(message(lambda: opt.step([cuda.to_device(np.ones(3))], hessian=[None])))
    ''')
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("TypeError: params[0] must be a CUDA array")
    assert lines[1].startswith("ValueError: grads[0] has shape (4,)")
    assert lines[2].startswith("TypeError: grads[0] must be a CUDA array")
    assert lines[3] == "TypeError: adam takes no input 'hessian'"


def test_simulated_square_root_of_a_negative_number_is_nan(tmp_path):
    """Found by the spec fuzzer: the simulator ran the kernels' math.sqrt as Python's, which
    raises on a negative number where the GPU (and NumPy) give NaN; sqrt is a device function
    with NumPy's meaning in both."""
    path = tmp_path / "roots.opt"
    path.write_text("optimizer roots\nhyper lr = 0.1\nupdate:\n"
                    "  p = p - lr * (sqrt(g) + 1 / sqrt(g - 1))\n"
                    "  p = p + where(sum(sqrt(g)) > 0, 1, 2)\n")  # NaN > 0 is false
    code = textwrap.dedent(f'''
        import json, numpy as np, optgen
        from numba import cuda
        g = np.array([-1.0, 0.0, 4.0])
        want = [np.ones(3)]
        optgen.optimizer({str(path)!r}, want, backend="numpy").step([g])
        got = cuda.to_device(np.ones(3))
        optgen.optimizer({str(path)!r}, [got], backend="cuda").step([cuda.to_device(g)])
        print(json.dumps([want[0].tolist(), got.copy_to_host().tolist()]))
    ''')
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "OPTGEN_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    want, got = json.loads(run.stdout)
    assert np.isnan(want[:2]).all() and abs(want[2] - (3 - 0.1 * (2 + 3 ** -0.5))) < 1e-12, want
    np.testing.assert_allclose(got, want, rtol=1e-12)
