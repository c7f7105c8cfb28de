"""Learning-rate schedules as pure functions of the global step.

The lr of step ``t`` (0-based, counted over the whole run) is ``base_lr * lr_factor(t, ...)``; the loop sets it
before every optimizer step. Because nothing but the step counter is stateful, a resumed run continues the
schedule exactly.

* ``step``: divide by 10 at each milestone epoch (the paper's recipe, section 5.1);
* ``cosine``: half a cosine from 1 down to 0 over the run;
* ``onecycle``: linear rise from 1/25 to 1 over the first 30% of steps, then cosine down to 1/25e4 (Smith's
  one-cycle shape; momentum is not cycled).

A linear warmup of ``warmup_steps`` (from ~0 to the schedule's value) multiplies any of them.
"""

from __future__ import annotations

import math

__all__ = ["lr_factor"]

ONECYCLE_PEAK_FRACTION = 0.3
ONECYCLE_START_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4


def lr_factor(
    step: int,
    *,
    schedule: str,
    total_steps: int,
    steps_per_epoch: int,
    milestones: list[int] = (),
    warmup_steps: int = 0,
) -> float:
    """The multiplier of the base lr at global step ``step`` (see the module docstring)."""
    progress = min(step / max(total_steps, 1), 1.0)
    if schedule == "step":
        epoch = step // max(steps_per_epoch, 1)  # 0-based; milestone m applies from epoch index m on
        factor = 0.1 ** sum(1 for m in milestones if epoch >= m)
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "onecycle":
        start = 1.0 / ONECYCLE_START_DIV
        final = start / ONECYCLE_FINAL_DIV
        if progress < ONECYCLE_PEAK_FRACTION:
            factor = start + (1.0 - start) * progress / ONECYCLE_PEAK_FRACTION
        else:
            down = (progress - ONECYCLE_PEAK_FRACTION) / (1.0 - ONECYCLE_PEAK_FRACTION)
            factor = final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * down))
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    if warmup_steps > 0 and step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor
