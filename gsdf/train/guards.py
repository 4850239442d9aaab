"""What stops a training run: preemption signals (checkpoint, then :class:`Preempted`) and
non-finite losses (:class:`NonFiniteLoss`, naming the step, the terms and the sample ids)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(RuntimeError):
    """Training stopped on a signal after writing the resumable checkpoint."""

    def __init__(self, signum: int, path: Path, epoch: int, batch: int, step: int):
        self.signum = signum
        self.path = path
        super().__init__(
            f"received {signal.Signals(signum).name}: saved {path} at epoch {epoch + 1}, "
            f"batch {batch}, step {step}; rerun the same command (or rule) to resume")


class NonFiniteLoss(FloatingPointError):
    """A loss term became NaN/inf; training stopped without writing a checkpoint."""

    def __init__(self, message: str, step: int, terms: dict[str, float], ids: list[str]):
        self.step = step
        self.terms = terms
        self.ids = ids
        super().__init__(message)


class PreemptionFlag:
    """Context manager: SIGTERM/SIGUSR1 set :attr:`signum` instead of killing the process.

    Handlers are installed only in the main thread and the previous ones are restored on exit.
    """

    def __init__(self, signals: Sequence[int] = PREEMPTION_SIGNALS, enabled: bool = True):
        self.signals = tuple(signals)
        self.enabled = enabled
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __enter__(self) -> PreemptionFlag:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def non_finite(values: dict[str, float], bad: bool, batch: Mapping, epoch: int, state: Any,
                env: Any) -> NonFiniteLoss:
    ids = [str(i) for i in batch.get("id", [])] if isinstance(batch, Mapping) else []
    step = state.step + 1
    if bad:
        terms = ", ".join(f"{k}={v:.6g}" for k, v in values.items())
        msg = (f"non-finite loss at step {step} (epoch {epoch + 1}, batch "
               f"{state.batch_in_epoch + 1}, rank {env.rank}): {terms}; batch sample ids: "
               f"{ids}. Training stopped; the last good checkpoint is kept.")
    else:
        msg = (f"non-finite loss on another rank at step {step}; training stopped (see that "
               f"rank's message for the terms and sample ids)")
    return NonFiniteLoss(msg, step, values, ids)


