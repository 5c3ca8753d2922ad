"""optgen: a language and compiler for machine-learning optimizers.

Write an optimizer as a short spec, ``optgen build`` it into fused kernels, and step arrays with
:func:`optgen.optimizer`.
"""

__version__ = "0.1.0"

from .runtime.threads import get_num_threads, set_num_threads  # noqa: E402  (first: the pool)
from .runtime.clipping import clip_grad_norm_, clip_grad_value_  # noqa: E402
from .runtime.factory import available, optimizer  # noqa: E402
from .runtime.frontend import Optimizer  # noqa: E402
from .runtime.schedules import (  # noqa: E402
    ReduceLROnPlateau, Schedule, ScheduledLR, SequentialSchedule, schedule)
from .runtime.blas_probe import import_arraymath as _import_arraymath  # noqa: E402

_import_arraymath()  # before Numba's first cache load would import all of scipy.linalg

__all__ = ["Optimizer", "ReduceLROnPlateau", "Schedule", "ScheduledLR", "SequentialSchedule",
           "available", "clip_grad_norm_", "clip_grad_value_", "get_num_threads", "optimizer",
           "schedule", "set_num_threads",
           "__version__"]
