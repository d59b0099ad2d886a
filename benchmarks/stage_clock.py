"""CPU seconds spent in each model of a RapidOCR engine: the profiler of ``throughput.py --profile``.

Only a benchmark needs it, so it lives here and not in the package; it reaches the
engine's models through :mod:`specread.ocr.internals`, like everything else that
changes RapidOCR's sessions.
"""

from __future__ import annotations

import time

import numpy as np

from specread.ocr import internals
from specread.ocr.rapid import RapidOcrEngine

__all__ = ["StageClock"]


class StageClock:
    """CPU seconds spent in each model of a :class:`RapidOcrEngine` (``Det``, ``Cls``, ``Rec``).

    :meth:`attach` wraps the loaded sessions so every call adds its process CPU time to
    :attr:`seconds`. Process time, not wall time: on a shared machine it is the comparable
    figure, and it counts the runtime's own threads. One engine per process while attached.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"Det": 0.0, "Cls": 0.0, "Rec": 0.0}

    def reset(self) -> None:
        """Back to zero (in place: the attached sessions hold this dict)."""
        for stage in self.seconds:
            self.seconds[stage] = 0.0

    @classmethod
    def attach(cls, engine: RapidOcrEngine) -> StageClock:
        """Load ``engine``'s models and start timing them."""
        clock = cls()
        ocr = engine.load()
        for stage in ("Det", "Cls", "Rec") if engine.settings.use_cls else ("Det", "Rec"):
            internals.wrap_session(ocr, stage, lambda session, stage=stage: _Timed(session, clock.seconds, stage))
        return clock


class _Timed:
    """A session wrapper that adds each call's process CPU time to ``seconds[stage]``."""

    def __init__(self, session: object, seconds: dict[str, float], stage: str) -> None:
        self.session, self.seconds, self.stage = session, seconds, stage

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        start = time.process_time()
        try:
            return self.session(batch)  # type: ignore[operator]
        finally:
            self.seconds[self.stage] += time.process_time() - start
