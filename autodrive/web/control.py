"""The driving state that the web controller's clients set and the drive loop reads.

The tornado thread writes it and the drive loop's thread reads it, so every
access takes one lock. The watchdog lives here too, so both threads apply it.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from autodrive.web.protocol import MODES, PILOT_MODES, Control

STATUS_FIELDS = (
    "loop_hz",
    "record_count",
    "pilot_angle",
    "pilot_throttle",
    "safe_angle",
    "safe_throttle",
    "sim_speed",
)


class ControlState:
    """Angle, throttle, mode, recording, emergency stop and maximum throttle, with a watchdog.

    ``watchdog_s``: when the driving client has sent no control message for
    this long while throttle is not zero, throttle is set to zero.
    ``has_pilot``: whether the car has a pilot model. Without one, ``modes``
    is only ``user``, and a pilot ``mode`` at start becomes ``user`` as in
    the drive-mode part.
    ``clock`` defaults to ``time.monotonic``; its value is what
    ``command_time`` reports.
    """

    def __init__(
        self,
        watchdog_s: float = 0.5,
        mode: str = "user",
        max_throttle: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        has_pilot: bool = True,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.modes = MODES if has_pilot else tuple(name for name in MODES if name not in PILOT_MODES)
        if mode not in self.modes:
            mode = "user"
        if not 0.0 <= max_throttle <= 1.0:
            raise ValueError(f"max_throttle must be from 0 to 1, got {max_throttle!r}")
        if not watchdog_s > 0:
            raise ValueError(f"watchdog_s must be more than 0 s, got {watchdog_s!r}")
        self.watchdog_s = watchdog_s
        self.clock = clock
        self._lock = threading.Lock()
        self._angle = 0.0
        self._throttle = 0.0
        self._mode = mode
        self._recording = False
        self._estop = False
        self._max_throttle = max_throttle
        self._command_time: float | None = None
        self._watchdog_tripped = False
        self._status: dict[str, Any] = {name: None for name in STATUS_FIELDS}

    def apply(self, control: Control) -> list[str]:
        """Apply a validated control message from the driver; return the names of changed modes or flags.

        Engaging the emergency stop also zeroes throttle, so releasing it never
        brings back an old throttle.
        """
        changes = []
        with self._lock:
            self._command_time = self.clock()
            self._watchdog_tripped = False
            if control.angle is not None:
                self._angle = control.angle
            if control.throttle is not None:
                self._throttle = control.throttle
            if control.max_throttle is not None:
                self._max_throttle = control.max_throttle
            if control.mode is not None and control.mode != self._mode:
                self._mode = control.mode
                changes.append(f"mode {control.mode}")
            if control.recording is not None and control.recording != self._recording:
                self._recording = control.recording
                changes.append("recording on" if control.recording else "recording off")
            if control.estop is not None and control.estop != self._estop:
                self._estop = control.estop
                changes.append("emergency stop engaged" if control.estop else "emergency stop released")
            if self._estop:
                self._throttle = 0.0
        return changes

    def engage_estop(self) -> bool:
        """Latch the emergency stop and zero throttle; return True when it was not latched before."""
        with self._lock:
            engaged_now = not self._estop
            self._estop = True
            self._throttle = 0.0
        return engaged_now

    def stop_throttle(self) -> None:
        """Set throttle to zero, for a driver that disconnected or released control."""
        with self._lock:
            self._throttle = 0.0

    def check_watchdog(self) -> bool:
        """Zero throttle when the driver has been silent too long; return True when this call did it."""
        with self._lock:
            return self._check_watchdog_locked(self.clock())

    def _check_watchdog_locked(self, now: float) -> bool:
        if self._throttle == 0.0:
            return False
        if self._command_time is not None and now - self._command_time <= self.watchdog_s:
            return False
        self._throttle = 0.0
        self._watchdog_tripped = True
        return True

    def outputs(self) -> tuple[float, float, str, bool, bool, float, float | None]:
        """Return angle, throttle, mode, recording, estop, max_throttle and command_time, with the watchdog applied.

        Throttle is clamped to plus or minus max_throttle.
        """
        with self._lock:
            self._check_watchdog_locked(self.clock())
            limit = self._max_throttle
            throttle = min(limit, max(-limit, self._throttle))
            return (
                self._angle,
                throttle,
                self._mode,
                self._recording,
                self._estop,
                self._max_throttle,
                self._command_time,
            )

    def set_status(self, values: dict[str, Any]) -> None:
        """Store the car's status values (loop rate, record count, pilot outputs) for the clients."""
        with self._lock:
            self._status.update(values)

    def snapshot(self) -> dict[str, Any]:
        """Return the state as a JSON-ready dict for the clients and the status endpoint."""
        angle, throttle, mode, recording, estop, max_throttle, command_time = self.outputs()
        with self._lock:
            status = dict(self._status)
            watchdog = self._watchdog_tripped
        age_s = None if command_time is None else round(self.clock() - command_time, 3)
        return {
            "angle": angle,
            "throttle": throttle,
            "mode": mode,
            "recording": recording,
            "estop": estop,
            "max_throttle": max_throttle,
            "watchdog": watchdog,
            "command_age_s": age_s,
            **status,
        }
