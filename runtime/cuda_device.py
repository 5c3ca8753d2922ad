"""Device functions the generated CUDA kernels call, with NumPy's meaning (NaN propagates
through maximum and minimum; sign keeps the dtype and gives 0 for 0 and NaN for NaN), and the
address-to-pointer intrinsic of the many-tensor kernel. Imported only when CUDA kernels are
made. Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) kernels run as Python, and so do
these."""

from __future__ import annotations

import numpy as np
from numba import config, cuda

if config.ENABLE_CUDASIM:
    def _maximum(a, b):
        return a if (a > b or a != a) else b

    def _minimum(a, b):
        return a if (a < b or a != a) else b

    def _sign(x):
        return np.sign(x)

    def address_as_pointer(address, like):
        raise NotImplementedError("the CUDA simulator has no device addresses: the many-tensor "
                                  "kernel runs on a GPU only")
else:
    from numba.core.extending import overload

    from .pointers import address_as_pointer  # noqa: F401  (for the kernels)

    @cuda.jit(device=True, inline=True)
    def _maximum(a, b):
        return a if (a > b or a != a) else b

    @cuda.jit(device=True, inline=True)
    def _minimum(a, b):
        return a if (a < b or a != a) else b

    def _sign(x):
        return np.sign(x)

    @overload(_sign, target="cuda")
    def _sign_device(x):
        one = np.dtype(str(x)).type(1)  # 1 in x's own float type: no promotion

        def impl(x):
            if x > 0:
                return one
            if x < 0:
                return -one
            return x

        return impl
