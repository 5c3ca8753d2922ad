"""Validation the front ends share: the kernels write through raw addresses, so before a step
every array they touch must be what the tables were built for.

The rules, for every front end (NumPy, CUDA, ``optgen.torch``):

* a state entry has the parameter's shape (a factored state its row/column shape); one of
  another floating dtype is converted to the state dtype (a copy, as torch.optim's
  ``load_state_dict`` casts); anything else raises, naming the parameter and the state;
* no two arrays the step writes (parameters and states) share memory: a ``ValueError`` names
  both;
* a dense layout (every element once, no gaps: C order, channels-last, any permutation) is
  stepped in storage order when its gradient and states have the same strides; other layouts
  through a contiguous copy.

All of it is bookkeeping in Python, below the front-end classes; nothing here imports them.
"""

from __future__ import annotations

import bisect
from typing import Callable, Iterable

import numpy as np

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy < 2
    byte_bounds = np.byte_bounds


def is_dense(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """Whether strides (in elements) lay ``shape`` out without gaps or overlaps, in some order
    of the dimensions (C order, channels-last, a transposed matrix ...)."""
    expected = 1
    for size, stride in sorted(((n, s) for n, s in zip(shape, strides) if n != 1),
                               key=lambda pair: pair[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def byte_span(address: int, shape: tuple[int, ...], strides: tuple[int, ...],
              itemsize: int) -> tuple[int, int]:
    """``[first, end)``: the bytes an array with nonnegative ``strides`` (in elements) can
    touch; empty for an empty array."""
    if 0 in shape:
        return address, address
    last = sum((n - 1) * s for n, s in zip(shape, strides))
    return address, address + (last + 1) * itemsize


def find_overlap(spans: Iterable[tuple[str, int, int, object]],
                 shares: Callable[[object, object], bool] | None = None
                 ) -> tuple[str, str] | None:
    """The labels of two arrays that share memory, or None. ``spans`` are
    ``(label, first byte, end byte, array)``; spans that intersect are confirmed with
    ``shares(a, b)`` where given (strided views can interleave without a common element)."""
    ordered = sorted((s for s in spans if s[2] > s[1]), key=lambda s: s[1])
    open_spans: list[tuple[str, int, int, object]] = []
    for span in ordered:
        open_spans = [o for o in open_spans if o[2] > span[1]]
        for other in open_spans:
            if shares is None or shares(other[3], span[3]):
                return other[0], span[0]
        open_spans.append(span)
    return None


def numpy_shares(a: np.ndarray, b: np.ndarray) -> bool:
    """Exact for ordinary views; treats an undecidable case as shared."""
    try:
        return bool(np.shares_memory(a, b, max_work=100_000))
    except np.exceptions.TooHardError:
        return True


def check_read(label: str, array, first: int, end: int, spans: list, starts: list,
               shares: Callable[[object, object], bool]) -> None:
    """An array the step reads (bytes ``[first, end)``) shares no memory with what it writes
    (``spans``: sorted, disjoint ``(label, first, end, array)``; ``starts`` their firsts):
    it would be read while being written."""
    i = bisect.bisect_left(starts, end) - 1
    while i >= 0 and spans[i][2] > first:
        if shares(array, spans[i][3]):
            raise ValueError(f"{label} shares memory with {spans[i][0]}, which the step "
                             "writes; give it memory of its own (a copy)")
        i -= 1


def overlap_error(first: str, second: str) -> ValueError:
    return ValueError(f"{first} and {second} share memory; the optimizer writes both in place, "
                      "so each must have storage of its own")


def state_shape_error(param: str, name: str, shape, expected) -> ValueError:
    return ValueError(f"state {name!r} of {param} has shape {tuple(shape)}, expected "
                      f"{tuple(expected)} (the parameter's); was it saved for another model, "
                      "or replaced by hand?")


def state_type_error(param: str, name: str, value, kind: str) -> TypeError:
    return TypeError(f"state {name!r} of {param} must be {kind}, got {type(value).__name__}")


def state_entries(module, shape: tuple[int, ...]) -> list[tuple[str, str, tuple | None]]:
    """``(name, kind, shape)`` of every entry a param of ``shape`` may keep: the step count
    (kind "step"), per-tensor scalars ("scalar"), per-element and factored states ("array",
    with the shape they must have)."""
    from .kernels import axis_shape, is_factored

    entries = [("step", "step", None)] + [(name, "scalar", None) for name in module.SCALARS]
    entries += [(name, "array", tuple(shape)) for name in module.STATES]
    if is_factored(tuple(shape)):
        entries += [(name, "array", axis_shape(tuple(shape), axis))
                    for name, axis in module.AXIS_STATES]
    return entries


#: The largest step count the NumPy front ends take (the kernels' step is a 64-bit integer).
MAX_STEP = (1 << 63) - 1


def plain_value(value, where: str) -> int | float:
    """A number, or the one value of a 1-element array or tensor, as a plain ``int`` or
    ``float``, read once: the step uses this value, not the object (whose ``__float__`` could
    do anything)."""
    if isinstance(value, np.ndarray) or callable(getattr(value, "numel", None)):
        count = value.size if isinstance(value, np.ndarray) else value.numel()
        if count != 1:
            raise ValueError(f"{where} must be a number or a 1-element array, got shape "
                             f"{tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where} must be a number, got {type(value).__name__}")
    number = int(value) if isinstance(value, (int, np.integer)) else float(value)
    if type(number) not in (int, float):
        raise TypeError(f"{where} must be a number, got {type(value).__name__}")
    return number


def check_step_count(value, where: str, limit: int = MAX_STEP) -> int:
    """A saved or hand-set step count: a whole number in [0, limit], as a plain int."""
    number = plain_value(value, where)
    if isinstance(number, float):
        if not number.is_integer():  # also nan and inf
            raise ValueError(f"{where} must be a whole number in [0, {limit}], got {number!r}")
        number = int(number)
    if not 0 <= number <= limit:
        raise ValueError(f"{where} must be a whole number in [0, {limit}], got {number!r}")
    return number


def check_scalar(value, where: str) -> float:
    """A per-tensor scalar state as a plain float (read once)."""
    number = plain_value(value, where)
    try:
        return float(number)
    except OverflowError:  # an int past float's range
        raise ValueError(f"{where} is too large for a float: {number!r}") from None


def checked_array_state(value, where_param: str, name: str, shape: tuple,
                        dtype: np.dtype) -> np.ndarray:
    """A NumPy state entry as the kernels need it (``dtype``, C order): ``value`` itself, or
    a converted copy; raises for a wrong type, shape or a read-only array."""
    if not isinstance(value, np.ndarray):
        raise state_type_error(where_param, name, value, "a numpy array")
    if value.shape != tuple(shape):
        raise state_shape_error(where_param, name, value.shape, shape)
    if value.dtype.kind != "f":
        raise TypeError(f"state {name!r} of {where_param} has dtype {value.dtype}; a floating "
                        "dtype is needed")
    if type(value) is not np.ndarray:  # a subclass (np.matrix ...): a plain copy
        return np.array(value, dtype=dtype, order="C", subok=False)
    if value.dtype == dtype and value.flags.c_contiguous:
        if not value.flags.writeable:
            raise ValueError(f"state {name!r} of {where_param} is read-only")
        return value
    return np.array(value, dtype=dtype, order="C")


def numpy_spans(arrays: Iterable[tuple[str, np.ndarray]]):
    """``find_overlap``'s spans of NumPy arrays (exact bounds, any strides)."""
    for label, array in arrays:
        if array.size:
            low, high = byte_bounds(array)
            yield label, low, high, array


def restored_group(module, state_dict) -> dict:
    """A state dict's per-group states (``state_dict["group"]``: the step count and each of
    ``GROUP_SCALARS``), validated; empty where the spec has none or none were made yet."""
    saved = state_dict.get("group", {}) if isinstance(state_dict, dict) else {}
    if not module.GROUP_SCALARS:
        if saved:
            raise ValueError("state_dict has per-group states; this optimizer keeps none")
        return {}
    if not isinstance(saved, dict):
        raise TypeError("state_dict['group'] must be a dict")
    unknown = [key for key in saved if key not in ("step", *module.GROUP_SCALARS)]
    if unknown:
        raise ValueError(f"state_dict['group'] has unknown entry {unknown[0]!r}")
    return checked_group_states(module, saved, "state_dict['group']") or {}


def settled_group_states(module, group_state, flat_hypers) -> dict:
    """A NumPy or CUDA front end's ``group_state`` validated (before a step moves anything),
    as plain numbers, made from ``group_inits`` where it has none yet."""
    if not isinstance(group_state, dict):
        raise TypeError("group_state must be a dict (from a step or load_state_dict), got "
                        f"{type(group_state).__name__}")
    unknown = [key for key in group_state if key not in ("step", *module.GROUP_SCALARS)]
    if unknown:
        raise ValueError(f"group_state has unknown entry {unknown[0]!r}")
    checked = checked_group_states(module, group_state, "group_state")
    if checked is None:
        checked = {"step": 0, **dict(zip(module.GROUP_SCALARS,
                                         map(float, module.group_inits(*flat_hypers))))}
    return checked


def checked_group_states(module, group: dict, where: str) -> dict | None:
    """A param group's per-group states as plain numbers (the step count as an int), read
    once; None where it has none yet. Either every one of ``"step"`` and ``GROUP_SCALARS`` is
    there or none is (a checkpoint of another optimizer has some): ValueError naming the
    first missing one."""
    wanted = ("step", *module.GROUP_SCALARS)
    present = [key for key in wanted if key in group]
    if not present:
        return None
    missing = [key for key in wanted if key not in group]
    if missing:
        raise ValueError(f"{where} has per-group state {present[0]!r} but not {missing[0]!r} "
                         f"(every one of {', '.join(map(repr, wanted))} or none: a checkpoint "
                         "of another optimizer?)")
    checked = {"step": check_step_count(group["step"], f"{where}['step']")}
    checked.update((name, check_scalar(group[name], f"{where}[{name!r}]"))
                   for name in module.GROUP_SCALARS)
    return checked


def restored_states(module, name: str, params: list[tuple[tuple, np.dtype]],
                    state_dict) -> tuple[list[dict], dict]:
    """Validate a NumPy-front-end state dict (``{"optimizer", "hypers", "state"}``) for params
    of these ``(shape, dtype)``; its per-param states as new arrays, and its hypers."""
    if not isinstance(state_dict, dict) or "state" not in state_dict:
        raise TypeError("state_dict must be a dict from Optimizer.state_dict()")
    if state_dict.get("optimizer") != name:
        raise ValueError(f"state_dict is for optimizer {state_dict.get('optimizer')!r}, "
                         f"not {name!r}")
    states = state_dict["state"]
    if not isinstance(states, (list, tuple)) or len(states) != len(params):
        count = len(states) if isinstance(states, (list, tuple)) else "?"
        raise ValueError(f"state_dict has state for {count} params, this optimizer has "
                         f"{len(params)}")
    restored = []
    for i, ((shape, dtype), saved) in enumerate(zip(params, states)):
        if not isinstance(saved, dict):
            raise TypeError(f"state_dict['state'][{i}] must be a dict")
        kinds = {entry[0]: entry for entry in state_entries(module, shape)}
        axis = dict(module.AXIS_STATES)
        entry = {}
        for key, value in saved.items():
            where = f"state_dict['state'][{i}][{key!r}]"
            if key not in kinds:
                if key in axis:  # a factored state saved for a param that is not factored
                    raise ValueError(f"{where}: params[{i}] of shape {shape} keeps no factored "
                                     "states")
                raise ValueError(f"state_dict['state'][{i}] has unknown entry {key!r}")
            _, kind, expected = kinds[key]
            if kind == "step":
                entry[key] = check_step_count(value, where)
            elif kind == "scalar":
                entry[key] = check_scalar(value, where)
            else:
                value = np.asarray(value)
                if value.shape != expected:
                    raise ValueError(f"{where} has shape {value.shape}, expected {expected} "
                                     f"for params[{i}] of shape {shape}")
                if value.dtype.kind not in "fiu":
                    raise TypeError(f"{where} has dtype {value.dtype}; a number array is needed")
                entry[key] = np.array(value, dtype=dtype, order="C", copy=True)
        restored.append(entry)
    hypers = state_dict.get("hypers", {})
    if not isinstance(hypers, dict):
        raise TypeError("state_dict['hypers'] must be a dict")
    return restored, hypers
