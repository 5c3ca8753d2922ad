"""The generated code's namespaces: spec names and the compiler's own can never meet.

Every identifier in a generated module belongs to exactly one of three disjoint sets, by its
spelling alone:

* **spec names** — what the spec declares (hyperparameters and their tuple items, states,
  inputs and their ``has_`` flags, temporaries) and the language's own ``p``, ``g``, ``t``.
  A spec name never starts with ``_`` (the checker refuses it), and it is printed into code as
  :func:`code_name`: the name with a trailing ``_`` (``lr`` is ``lr_``, ``range`` is ``range_``).
* **loaded values** — an array's element as a kernel reads it (:func:`local_name`): ``_`` + the
  array's name + ``_`` (``_exp_avg_``).
* **the compiler's own** — everything else: builtins (``range``, ``min``), modules (``numpy``,
  ``numba``, ``math``, ``cuda``), the module's globals (``HyperSpec``, ``REDUCE_BLOCK``,
  ``address_as_pointer``), and the plan's and templates' temporaries (``_h0``, ``_e3``, ``_i``).
  None of them ends with ``_`` (a rule templates and the planner keep; ``tests/test_hygiene.py``
  checks it on every generated module).

So a spec may call its state ``range``, ``h0`` or ``cuda`` and get the same bits as with any
other name: the code says ``range_``, ``_h0_`` and ``cuda_``. What the runtime reads by name
(``HYPER_ARGS``, ``STATES``, hyperparameter keywords, state-dict keys) stays the spec's own
spelling; only identifiers change. This is SymPy's ``Dummy`` idea (a symbol of the compiler's
can never equal a user's) carried into the printed code.
"""

from __future__ import annotations

#: The longest name a spec may use (spec, hyperparameter, state, ... names). The generated
#: module's file is named after the spec, and the cache adds a prefix and a digest; 80 keeps
#: every such file name far below the usual 255-byte limit.
MAX_NAME_LENGTH = 80


def is_internal(name: str) -> bool:
    """Whether ``name`` is one of the compiler's own (or a loaded value), not a spec name."""
    return name.startswith("_")


def code_name(name: str) -> str:
    """The identifier generated code uses for ``name``: spec names get a trailing ``_``; the
    compiler's own names (starting with ``_``) are printed as they are."""
    return name if is_internal(name) else f"{name}_"


def local_name(name: str) -> str:
    """The name of array ``name``'s element as a kernel loads it (``_exp_avg_``): starts with
    ``_`` (never a spec name) and ends with ``_`` (never one of the compiler's own names)."""
    assert not is_internal(name), name
    return f"_{name}_"
