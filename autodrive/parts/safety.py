"""Drive-mode selection and the safety stage, the last part before the motors.

``DriveMode`` chooses between the person's and the pilot's commands according
to the mode in force (``user``, ``local_angle`` or ``local``). ``SafetyStage``
turns the chosen command into what the motors get: clamped, limited, and
replaced by a stop whenever the command cannot be trusted (NaN or infinity, a
silent control source, a latched emergency stop).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from autodrive.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

MODES = ("user", "local_angle", "local")
PILOT_MODES = ("local_angle", "local")

# Repeated warnings about the same fault are logged at most this often.
LOG_INTERVAL_S = 5.0


class DriveMode:
    """Part that selects the command for the mode in force.

    Inputs: user/angle, user/throttle, user/mode, pilot/angle, pilot/throttle.
    Outputs: drive/angle, drive/throttle, and user/mode rewritten to the mode in
    force, so that parts after this one (the safety stage, the recorder) see the
    mode that actually drove the car rather than the one requested.

    A requested mode that is unknown, or a pilot mode when the car has no pilot,
    is rejected with a log line and the previous mode stays in force. A missing
    request (None, for example before any browser connected) keeps the mode too.
    ``throttle_scale`` (pilot.throttle_scale, 0..1) multiplies the pilot's
    throttle in ``local`` mode.
    """

    def __init__(self, mode: str = "user", has_pilot: bool = False, throttle_scale: float = 1.0):
        if mode not in MODES:
            raise ValueError(f"drive mode {mode!r} is not one of {', '.join(MODES)}")
        if mode in PILOT_MODES and not has_pilot:
            log.warning("drive.mode is %s but no pilot model is loaded; starting in user mode", mode)
            mode = "user"
        self.mode = mode
        self.has_pilot = has_pilot
        self.throttle_scale = throttle_scale
        self._last_request: Any = None
        log.info("drive mode at start: %s", self.mode)

    def run(self, user_angle: Any, user_throttle: Any, requested_mode: Any,
            pilot_angle: Any = None, pilot_throttle: Any = None) -> tuple[Any, Any, str]:
        if requested_mode is not None and requested_mode != self._last_request:
            self._last_request = requested_mode
            self._switch(requested_mode)

        if self.mode == "user":
            return user_angle, user_throttle, self.mode
        if self.mode == "local_angle":
            return pilot_angle, user_throttle, self.mode
        throttle = pilot_throttle
        if isinstance(throttle, (int, float)) and not isinstance(throttle, bool):
            throttle = throttle * self.throttle_scale
        return pilot_angle, throttle, self.mode

    def _switch(self, requested: Any) -> None:
        if requested not in MODES:
            log.warning("ignored request for unknown drive mode %r; expected one of %s; staying in %s",
                        requested, ", ".join(MODES), self.mode)
            return
        if requested in PILOT_MODES and not self.has_pilot:
            log.warning("ignored request for %s mode: no pilot model is loaded (start with --model); staying in %s",
                        requested, self.mode)
            return
        if requested != self.mode:
            log.info("drive mode changed from %s to %s", self.mode, requested)
            self.mode = requested


class SafetyStage:
    """Part that clamps the chosen command and stops the car when it cannot be trusted.

    Inputs: drive/angle, drive/throttle, user/mode (the mode in force),
    user/estop, user/max_throttle, user/command_time, pilot/output_time.
    Outputs: safe/angle, safe/throttle.

    Rules, applied every loop:

    - angle and throttle are clamped to [-1, 1], then the throttle magnitude
      (forward and reverse) to the smaller of ``max_throttle`` (drive.max_throttle)
      and user/max_throttle when the web page sets one;
    - a missing command (None) gives throttle 0; a non-numeric, NaN or infinite
      value gives throttle 0 and angle 0, logged at most every 5 s;
    - in ``user`` and ``local_angle`` mode the throttle comes from the person, so
      user/command_time older than ``user_timeout_s`` (web.watchdog_s), or never
      set (no web client yet), gives throttle 0;
    - in ``local_angle`` and ``local`` mode pilot/output_time older than
      ``pilot_timeout_s`` (pilot.timeout_s), or never set, gives throttle 0;
    - in ``local`` mode a web client that was connected and then went silent
      for ``user_timeout_s`` also gives throttle 0, so losing the link to the
      person who supervises the car stops it. A car driven with no web client
      at all (user/command_time never set) is not stopped for that;
    - user/estop True latches an emergency stop that holds until user/estop is
      False again; None (no web client yet) does not release it.

    Times are ``clock()`` seconds, default ``time.monotonic``, the clock the
    web controller and the pilot stamp their outputs with.
    """

    def __init__(
        self,
        max_throttle: float = 1.0,
        user_timeout_s: float = 0.5,
        pilot_timeout_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_throttle = max_throttle
        self.user_timeout_s = user_timeout_s
        self.pilot_timeout_s = pilot_timeout_s
        self.clock = clock
        self.estop_latched = False
        self.stop_reason: str | None = None
        self._log = RateLimitedLog(log, LOG_INTERVAL_S, clock)

    def run(
        self,
        angle: Any,
        throttle: Any,
        mode: Any = "user",
        estop: Any = None,
        user_max_throttle: Any = None,
        user_time: Any = None,
        pilot_time: Any = None,
    ) -> tuple[float, float]:
        now = self.clock()
        angle_value = _as_number(angle)
        throttle_value = _as_number(throttle)

        if estop is not None:
            if bool(estop) and not self.estop_latched:
                log.warning("emergency stop latched")
                self.estop_latched = True
            elif not bool(estop) and self.estop_latched:
                log.warning("emergency stop released")
                self.estop_latched = False

        reason = None
        if self.estop_latched:
            reason = "emergency stop"
        elif angle_value is _INVALID or throttle_value is _INVALID:
            reason = "invalid command"
            self._log.warning("invalid", "safety stop: invalid command angle=%r throttle=%r (mode %s)",
                              angle, throttle, mode)
        elif throttle_value is None:
            reason = "no command"
        else:
            reason = self._timeout_reason(mode, now, user_time, pilot_time)

        if angle_value is _INVALID or angle_value is None:
            safe_angle = 0.0
        else:
            safe_angle = min(1.0, max(-1.0, angle_value))

        if reason is not None:
            safe_throttle = 0.0
        else:
            limit = self.max_throttle
            user_limit = _as_number(user_max_throttle)
            if user_limit is not None and user_limit is not _INVALID:
                limit = min(limit, max(0.0, user_limit))
            safe_throttle = min(limit, max(-limit, throttle_value))

        self._note_reason(reason)
        return safe_angle, safe_throttle

    def _timeout_reason(self, mode: Any, now: float, user_time: Any, pilot_time: Any) -> str | None:
        if mode in ("user", "local_angle") and _is_stale(user_time, now, self.user_timeout_s):
            if user_time is None:
                return "no command"
            self._log.warning("user", "safety stop: no command from the web client for %.2f s (web.watchdog_s = %g)",
                              now - user_time, self.user_timeout_s)
            return "web client silent"
        if mode in PILOT_MODES and _is_stale(pilot_time, now, self.pilot_timeout_s):
            if pilot_time is not None:
                self._log.warning("pilot", "safety stop: no pilot output for %.2f s (pilot.timeout_s = %g)",
                                  now - pilot_time, self.pilot_timeout_s)
            return "pilot silent"
        if mode == "local" and user_time is not None and _is_stale(user_time, now, self.user_timeout_s):
            self._log.warning("link", "safety stop: web client silent for %.2f s while the pilot drives",
                              now - user_time)
            return "web client silent"
        return None

    def _note_reason(self, reason: str | None) -> None:
        if reason == self.stop_reason:
            return
        # "no command" is the normal state before anyone drives; log it quietly.
        if reason is not None and reason != "no command":
            log.info("safety stage keeps throttle at 0: %s", reason)
        elif reason is None and self.stop_reason is not None:
            log.info("safety stage passes commands again")
        self.stop_reason = reason


_INVALID = object()


def _as_number(value: Any) -> Any:
    """Return a finite float, None for None, or _INVALID for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return _INVALID
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _INVALID
    if not math.isfinite(number):
        return _INVALID
    return number


def _is_stale(stamp: Any, now: float, timeout_s: float) -> bool:
    value = _as_number(stamp)
    if value is None or value is _INVALID:
        return True
    return now - value > timeout_s
