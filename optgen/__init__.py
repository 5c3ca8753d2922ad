"""optgen: a language and compiler for machine-learning optimizers.

Write an optimizer as a short spec, ``optgen build`` it into fused kernels, and step arrays with
:func:`optgen.optimizer`.
"""

__version__ = "0.1.0"

from .runtime.frontend import Optimizer, available, optimizer  # noqa: E402

__all__ = ["Optimizer", "available", "optimizer", "__version__"]
