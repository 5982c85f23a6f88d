"""Rate-limited logging for faults that can repeat on every loop iteration."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable


class RateLimitedLog:
    """Log a warning per key at once, then at most once per ``interval_s`` while it repeats.

    The next warning logged for a key says how many were left out since the
    previous one. ``clock`` returns seconds, ``time.monotonic`` by default.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._last_s: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: Any) -> None:
        now = self.clock()
        last_s = self._last_s.get(key)
        if last_s is not None and now - last_s < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return

        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += " (%d similar messages not logged)"
            args = (*args, suppressed)
        self._last_s[key] = now
        self.logger.warning(message, *args)
