"""What ``optgen.torch`` checks before its kernels address a tensor: the rules of
:mod:`optgen.runtime.checks` for torch tensors (imported only by the PyTorch front end).

Every check returns plain values (``int``, ``float``) or the very tensor it checked, so the
step uses exactly what was validated: nothing is read twice from a dict another thread, or a
number's ``__float__``, could change in between.
"""

from __future__ import annotations


import numpy as np
import torch

from .checks import (byte_span, check_read, check_scalar, check_step_count, checked_group_states,
                     find_overlap,
                     numpy_shares, overlap_error, state_shape_error, state_type_error)
from .kernels import axis_shape

FULL_PRECISION = (torch.float32, torch.float64)
HALF_PRECISION = (torch.bfloat16, torch.float16)
#: The tensor types the kernels can address (subclasses such as DTensor wrap other storage).
PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)
#: Step counts live in a float32 tensor, as torch.optim's: whole numbers up to 2^24 are exact.
MAX_STEP = 1 << 24


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision params keep float32 states; float32/float64 their own dtype."""
    return torch.float32 if dtype in HALF_PRECISION else dtype


def check_param(p, label: str, module) -> None:
    """A param the kernels can address: a plain dense CPU or CUDA tensor of a supported dtype
    (2-D where the spec has a matrix stage)."""
    if type(p) not in PLAIN_TENSORS:
        raise TypeError(f"{label} is a {type(p).__module__}.{type(p).__name__}; optgen.torch "
                        "steps plain tensors (torch.Tensor, torch.nn.Parameter), not tensor "
                        "subclasses such as DTensor (FSDP2's fully_shard) or lazy parameters")
    if p.is_sparse or p.layout != torch.strided or p.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{label}: optgen.torch steps dense CPU and CUDA tensors (got "
                         f"{p.device.type}{', sparse' if p.is_sparse else ''})")
    if p.device.type == "cuda":
        from .cuda import require
        require()
    if p.dtype not in FULL_PRECISION + HALF_PRECISION:
        raise TypeError(f"{label} has dtype {p.dtype}; supported: float32, float64, bfloat16, "
                        "float16")
    check_written(p, label)
    if module.MATRIX_OPS and p.dim() != 2:
        raise ValueError(f"{module.NAME} steps 2-D matrices only; {label} has shape "
                         f"{tuple(p.shape)}")
    check_storage(p, label)


def check_storage(tensor: torch.Tensor, label: str) -> None:
    """The tensor's elements lie inside its storage (a storage resized in place may not)."""
    if tensor.numel() == 0:
        return
    last = tensor.storage_offset() + sum((n - 1) * s for n, s in zip(tensor.shape,
                                                                    tensor.stride()))
    if (last + 1) * tensor.element_size() > tensor.untyped_storage().nbytes():
        raise ValueError(f"{label} reaches past the end of its storage (was the storage "
                         "resized in place?)")


def check_tensor_like(value, p: torch.Tensor, label: str, shape=None) -> torch.Tensor:
    """A gradient, an input or a state for param ``p``: a plain floating tensor on its device
    with ``shape`` (default: the param's), inside its storage."""
    expected = tuple(p.shape) if shape is None else tuple(shape)
    if type(value) not in PLAIN_TENSORS:
        raise TypeError(f"{label} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_sparse or value.layout != torch.strided:
        raise ValueError(f"{label} is sparse; optgen.torch takes dense tensors")
    if tuple(value.shape) != expected:
        raise ValueError(f"{label} has shape {tuple(value.shape)}, expected {expected} (the "
                         "param's)")
    if value.device != p.device:
        raise ValueError(f"{label} is on {value.device}, its param on {p.device}")
    if not value.is_floating_point():
        raise TypeError(f"{label} has dtype {value.dtype}; a floating dtype is needed")
    check_storage(value, label)
    return value


def check_written(value: torch.Tensor, label: str) -> None:
    """A tensor the kernels write: its memory holds its values as they are (no lazy
    negation bit, as a view such as ``z.conj().imag`` carries)."""
    if value.is_neg() or value.is_conj():
        raise TypeError(f"{label} is a negated or conjugated view; step a tensor of its own "
                        "(.resolve_neg() / .clone())")


def plain_number(value, label: str) -> float:
    """A number or 1-element tensor as a Python float (read once)."""
    return check_scalar(value, label)


def plain_step(value, label: str) -> int:
    """A step count: a whole number in [0, 2^24] (float32 counts it exactly), as an int."""
    return check_step_count(value, label, MAX_STEP)


def partial_overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` share some memory without being the same elements in the same
    layout (an exact alias is harmless: the kernels read and write element by element)."""
    if a.device != b.device or a.numel() == 0 or b.numel() == 0:
        return False
    if a.data_ptr() == b.data_ptr() and a.stride() == b.stride() and a.shape == b.shape:
        return False
    first_a, end_a = byte_span(a.data_ptr(), tuple(a.shape), a.stride(), a.element_size())
    first_b, end_b = byte_span(b.data_ptr(), tuple(b.shape), b.stride(), b.element_size())
    return first_a < end_b and first_b < end_a and tensors_share(a, b)


def tensors_share(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.device != b.device:
        return False
    if a.device.type != "cpu":
        return True  # the spans intersect: no exact test on the device

    def as_numpy(t):
        t = t.detach()
        return (t.view(torch.int16) if t.dtype in HALF_PRECISION else t).numpy()
    return numpy_shares(as_numpy(a), as_numpy(b))


def check_overlaps(param_groups, state, scalar_names=()) -> list:
    """No two tensors the step writes (params, and the per-element states that exist) share
    memory; their spans ``(label, first byte, end byte, tensor)``, sorted."""
    spans = []
    for g, group in enumerate(param_groups):
        for i, p in enumerate(group["params"]):
            label = f"param_groups[{g}]['params'][{i}]"
            spans.append(_span(p, label))
            entries = state.get(p)
            if not isinstance(entries, dict):
                continue
            for name, value in entries.items():
                if (name != "step" and name not in scalar_names
                        and isinstance(value, torch.Tensor) and value.numel()):
                    spans.append(_span(value, f"state {name!r} of {label}"))
    pair = find_overlap(spans, tensors_share)
    if pair is not None:
        raise overlap_error(*pair)
    return sorted((span for span in spans if span[2] > span[1]), key=lambda span: span[1])


def span_arrays(spans: list) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint written spans as the compiled gradient check takes them."""
    return (np.array([s[1] for s in spans], dtype=np.int64),
            np.array([s[2] for s in spans], dtype=np.int64))


def check_reads(reads, spans: list) -> None:
    """Each tensor a step reads (``(label, tensor, own)``: gradients, inputs) either is
    exactly one of ``own`` (its param, its states: harmless, each element is read before it
    is written) or shares no memory with what the step writes (``spans``, sorted): a
    gradient that is another param would be read while that param is written."""
    if not spans:
        return
    starts = [span[1] for span in spans]
    for label, tensor, own in reads:
        if tensor.numel() == 0 or any(exact_alias(tensor, o) for o in own):
            continue
        first, end = byte_span(tensor.data_ptr(), tuple(tensor.shape), tensor.stride(),
                               tensor.element_size())
        check_read(label, tensor, first, end, spans, starts, tensors_share)


def exact_alias(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.device == b.device and a.data_ptr() == b.data_ptr() and a.shape == b.shape
            and a.stride() == b.stride() and a.dtype == b.dtype)


def _span(tensor: torch.Tensor, label: str):
    first, end = byte_span(tensor.data_ptr(), tuple(tensor.shape), tensor.stride(),
                           tensor.element_size())
    return label, first, end, tensor


def array_state(value, p: torch.Tensor, label: str, name: str, axis: dict) -> torch.Tensor:
    """A per-element or factored state entry of ``p``, checked."""
    shape = tuple(p.shape) if name not in axis else axis_shape(tuple(p.shape), axis[name])
    if not isinstance(value, torch.Tensor):
        raise state_type_error(label, name, value, "a tensor")
    if tuple(value.shape) != shape:
        raise state_shape_error(label, name, value.shape, shape)
    check_written(value, f"state {name!r} of {label}")
    return check_tensor_like(value, p, f"state {name!r} of {label}", shape)


def checked_checkpoint(opt, state_dict, flat_hypers) -> dict:
    """Validate a torch.optim state dict against optimizer ``opt`` before it is loaded; the
    states the kernels read, exactly as saved, in the dtypes ``opt`` keeps them in."""
    if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
        raise TypeError("state_dict must be a dict with 'state' and 'param_groups' (from "
                        "state_dict())")
    saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
    if not isinstance(saved_state, dict):
        raise TypeError(f"state_dict['state'] must be a dict, got {type(saved_state).__name__}")
    if not isinstance(saved_groups, (list, tuple)) or len(saved_groups) != len(opt.param_groups):
        raise ValueError("loaded state dict has a different number of parameter groups")
    ids = {}
    for g, (group, saved) in enumerate(zip(opt.param_groups, saved_groups)):
        if not isinstance(saved, dict) or len(saved.get("params", ())) != len(group["params"]):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        merged = {**group, **{k: v for k, v in saved.items() if k != "params"}}
        flat_hypers(merged, g)
        checked_group_states(opt._module, saved, f"state_dict['param_groups'][{g}]")
        for i, (key, p) in enumerate(zip(saved["params"], group["params"])):
            ids[key] = (p, f"param_groups[{g}]['params'][{i}]")
    module = opt._module
    axis = dict(module.AXIS_STATES)
    exact: dict = {}
    for key, entries in saved_state.items():
        if key not in ids:
            continue  # torch.optim ignores these too
        p, label = ids[key]
        if not isinstance(entries, dict):
            raise TypeError(f"state of {label} must be a dict, got {type(entries).__name__}")
        kept = {}
        for name, value in entries.items():
            where = f"state {name!r} of {label}"
            if name == "step":
                plain_step(value, where)
            elif name in module.SCALARS:
                kept[name] = torch.tensor(plain_number(value, where), dtype=torch.float64)
            elif name in module.STATES or name in axis:
                shape = (tuple(p.shape) if name not in axis
                         else axis_shape(tuple(p.shape), axis[name]))
                if not isinstance(value, torch.Tensor):
                    raise state_type_error(label, name, value, "a tensor")
                if tuple(value.shape) != shape:
                    raise state_shape_error(label, name, value.shape, shape)
                if not value.is_floating_point():
                    raise TypeError(f"{where} has dtype {value.dtype}; a floating dtype is "
                                    "needed")
                kept[name] = value.detach().to(device=p.device, dtype=state_dtype(p.dtype),
                                               copy=True)
        exact[p] = kept
    return exact
