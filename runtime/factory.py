"""``optgen.optimizer(name_or_path, params, backend="cpu", **hypers)``: the one entry point of the
NumPy front end, above the classes it picks between.

    factory.optimizer ──▶ frontend.Optimizer (NumPy arrays: "cpu", "numpy")
                      ├─▶ cuda_frontend.CudaOptimizer (CUDA arrays: "cuda")
                      └─▶ wrapped.Wrapped (a spec that ``wraps inner``: two of the above)

The classes share the bookkeeping below them (:mod:`.hypers`, :mod:`.checks`, :mod:`.kernels`)
and never import this module or each other.
"""

from __future__ import annotations

from .frontend import Optimizer
from .loader import available, load
from .wrapped import Wrapped

__all__ = ["available", "optimizer"]


def optimizer(name_or_path, params, backend: str = "cpu", inner=None, **hypers):
    """An optimizer over ``params`` (a list of float32/float64 arrays, updated in place).

    ``name_or_path`` is a catalogue name (see :func:`available`) or the path of a ``.opt`` spec:
    it is a path when it is an ``os.PathLike``, ends in ``.opt`` or contains a path separator
    (``"./adam"``), else a name — a file called ``adam`` in the working folder never shadows
    the catalogue's ``adam``.
    ``backend`` is ``"cpu"`` (Numba, fused and parallel), ``"numpy"`` (the reference) or
    ``"cuda"`` (Numba CUDA kernels; params and grads are CUDA arrays, updated on the device).
    Hyperparameters not given take the spec's defaults. A spec that ``wraps inner`` (Lookahead)
    takes the inner optimizer as ``inner=`` (a name or path); hyperparameters it does not know
    go to the inner one.
    """
    module = load(name_or_path)
    if getattr(module, "KIND", "optimizer") == "wrapper":
        if inner is None:
            raise TypeError(f"{module.NAME} wraps another optimizer: pass inner='adam' (a "
                            "catalogue name or a spec path)")
        own = {h.name for h in module.HYPERS}
        outer = _one(module, params, backend, {k: v for k, v in hypers.items() if k in own})
        inner_optimizer = optimizer(inner, params, backend=backend,
                                    **{k: v for k, v in hypers.items() if k not in own})
        return Wrapped(outer, inner_optimizer)
    if inner is not None:
        raise TypeError(f"{module.NAME} does not wrap another optimizer; inner= is for specs "
                        "declared 'wraps inner' (lookahead)")
    return _one(module, params, backend, hypers)


def _one(module, params, backend, hypers):
    if isinstance(backend, str) and backend == "cuda":
        from .cuda_frontend import CudaOptimizer  # Numba's CUDA target only when asked for
        return CudaOptimizer(module, params, **hypers)
    return Optimizer(module, params, backend=backend, **hypers)
