"""Learning-rate schedules for the NumPy front end.

* :func:`schedule` — a generated schedule spec (``specs/*.opt`` starting ``schedule NAME``) as a
  callable ``t -> lr``, t counting scheduler steps from 0 like torch's ``last_epoch``;
* :class:`SequentialSchedule` — one schedule after another at milestones, as
  ``torch.optim.lr_scheduler.SequentialLR`` (each restarts its own count at its milestone);
* :class:`ScheduledLR` — drives an optimizer's ``lr`` from a schedule, step by step;
* :class:`ReduceLROnPlateau` — lowers ``lr`` when a metric stops improving, with torch's
  semantics (mode, factor, patience, threshold and its mode, cooldown, min_lr, eps).
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Callable, Sequence

import numpy as np

from .hypers import HasHypers
from .loader import load

__all__ = ["schedule", "Schedule", "SequentialSchedule", "ScheduledLR", "ReduceLROnPlateau"]


def schedule(name_or_path, **hypers) -> "Schedule":
    """A schedule from the catalogue (``"cosine_annealing"``) or a ``.opt`` spec file."""
    return Schedule(load(name_or_path), **hypers)


class Schedule(HasHypers):
    """``schedule(t)``: the learning rate after ``t`` scheduler steps."""

    def __init__(self, module, **hypers):
        object.__setattr__(self, "_module", module)
        if getattr(module, "KIND", "optimizer") != "schedule":
            raise ValueError(f"{module.NAME!r} is an optimizer, not a schedule")
        self._init_hypers(hypers)

    def __call__(self, t: int) -> float:
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"t must be a nonnegative int (scheduler steps), got {t!r}")
        with np.errstate(all="ignore"):  # as an optimizer's host values: inf and nan, quietly
            return float(self._module.lr_at(t, *self._flat(self._hypers)))

    def values(self, steps: int) -> list[float]:
        """lr for t = 0 .. steps - 1."""
        return [self(t) for t in range(steps)]

    def __repr__(self) -> str:
        hypers = ", ".join(f"{k}={v!r}" for k, v in self._hypers.items())
        return f"optgen.schedule({self.name!r}, {hypers})"


class SequentialSchedule:
    """``schedules[i]`` from ``milestones[i - 1]`` on, counting its own steps from 0 there."""

    def __init__(self, schedules: Sequence[Callable[[int], float]], milestones: Sequence[int]):
        if len(schedules) < 1 or len(milestones) != len(schedules) - 1:
            raise ValueError(f"need one milestone fewer than schedules, got {len(schedules)} "
                             f"schedules and {len(milestones)} milestones")
        if any(not isinstance(m, int) or m < 1 for m in milestones) or \
                list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing positive ints, got {milestones!r}")
        self.schedules = list(schedules)
        self.milestones = list(milestones)

    def __call__(self, t: int) -> float:
        index = bisect.bisect_right(self.milestones, t)
        start = self.milestones[index - 1] if index else 0
        return self.schedules[index](t - start)


class ScheduledLR:
    """Sets ``optimizer.lr = schedule(t)``: at construction t = 0, then +1 per :meth:`step`
    (call it after ``optimizer.step``, as with torch's schedulers)."""

    def __init__(self, optimizer, schedule: Callable[[int], float], hyper: str = "lr"):
        self.optimizer, self.schedule, self.hyper = optimizer, schedule, hyper
        self.t = 0
        self._apply()

    def step(self) -> None:
        self.t += 1
        self._apply()

    def _apply(self) -> None:
        self.optimizer.set(**{self.hyper: self.schedule(self.t)})

    def get_last_lr(self) -> float:
        return self.optimizer.hypers[self.hyper]

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        t = state.get("t")
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"state['t'] must be a nonnegative int, got {t!r}")
        self.t = t
        self._apply()


class ReduceLROnPlateau:
    """torch.optim.lr_scheduler.ReduceLROnPlateau for one optimizer's ``lr``."""

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8, hyper: str = "lr"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not 0 <= factor < 1:
            raise ValueError(f"factor must be in [0, 1), got {factor!r}")
        if patience < 0 or cooldown < 0:
            raise ValueError("patience and cooldown must be nonnegative")
        self.optimizer, self.hyper = optimizer, hyper
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.min_lr, self.eps = cooldown, min_lr, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _better(self, value: float) -> bool:
        if self.mode == "min":
            bound = self.best * (1 - self.threshold) if self.threshold_mode == "rel" \
                else self.best - self.threshold
            return value < bound
        bound = self.best * (1 + self.threshold) if self.threshold_mode == "rel" \
            else self.best + self.threshold
        return value > bound

    def step(self, metric: float) -> None:
        value = float(metric)
        if self._better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.hypers[self.hyper]
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.set(**{self.hyper: new})
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def get_last_lr(self) -> float:
        return self.optimizer.hypers[self.hyper]
