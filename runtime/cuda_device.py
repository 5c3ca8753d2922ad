"""Device functions the generated CUDA kernels call, with NumPy's meaning (NaN propagates
through maximum and minimum; sign keeps the dtype and gives 0 for 0 and NaN for NaN; the square
root of a negative number is NaN, as on the GPU, where Python's math.sqrt raises), and the
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

    def _reciprocal(x):
        return np.reciprocal(x)

    def _sqrt(x):
        return np.sqrt(x)

    def address_as_pointer(address, like):
        raise NotImplementedError("the CUDA simulator has no device addresses: the many-tensor "
                                  "kernel runs on a GPU only")
else:
    import math

    from numba import types
    from numba.extending import intrinsic

    from .pointers import address_as_pointer  # noqa: F401  (for the kernels)

    @cuda.jit(device=True, inline=True)
    def _maximum(a, b):
        return a if (a > b or a != a) else b

    @cuda.jit(device=True, inline=True)
    def _minimum(a, b):
        return a if (a < b or a != a) else b

    @cuda.jit(device=True, inline=True)
    def _sqrt(x):
        return math.sqrt(x)  # sqrtf for float32: the dtype is kept

    @intrinsic
    def _sign(typingctx, x):
        """numpy.sign in x's own float type (a literal 1 would promote float32 to float64):
        1 where x > 0, -1 where x < 0, else x itself (0, -0 or NaN). Inline LLVM selects."""
        if not isinstance(x, types.Float):
            return None

        def codegen(context, builder, signature, args):
            (value,) = args
            kind = signature.args[0]
            zero, one, minus_one = (context.get_constant(kind, c) for c in (0.0, 1.0, -1.0))
            positive = builder.fcmp_ordered(">", value, zero)
            negative = builder.fcmp_ordered("<", value, zero)
            return builder.select(positive, one, builder.select(negative, minus_one, value))

        return x(x), codegen

    @intrinsic
    def _reciprocal(typingctx, x):
        """1/x in x's own float type (``1/x`` with Python's 1 computes in float64)."""
        if not isinstance(x, types.Float):
            return None

        def codegen(context, builder, signature, args):
            one = context.get_constant(signature.args[0], 1.0)
            return builder.fdiv(one, args[0])

        return x(x), codegen
