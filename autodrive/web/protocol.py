"""The web controller's websocket protocol: JSON text messages, each one object.

Client to server
----------------
``{"type": "control", "seq": 41, "angle": -0.2, "throttle": 0.3, "mode": "user",
"recording": false, "max_throttle": 0.5, "estop": false}``
    Driving commands. ``seq`` is required: a whole number from 0 to 2**53 that
    must grow with every control message on one connection. Every other field
    is optional, and a missing one keeps its current value:

    - ``angle``: number from -1 (full left) to 1 (full right)
    - ``throttle``: number from -1 (full reverse) to 1 (full forward); the
      server clamps it to plus or minus ``max_throttle``
    - ``mode``: one of ``user``, ``local_angle``, ``local``. The two pilot
      modes are rejected when the car has no pilot model. The ``modes`` of
      the hello message lists the modes the car accepts.
    - ``recording``: true or false
    - ``max_throttle``: number from 0 to 1
    - ``estop``: true latches the emergency stop, false releases it

    Only the driving client may send control messages, except that any
    client may send ``estop: true`` alone, so a watcher can stop the car too.
    The page sends its state every 100 ms while it drives; the server sets
    throttle to zero when the driver is silent for ``web.watchdog_s``.

``{"type": "ping", "t": 1234.5}``
    Latency probe; the server returns ``t`` unchanged in a ``pong``.

``{"type": "take"}``
    A watcher requests to drive. Granted when no client drives, or when the driver has
    sent nothing for ``DRIVER_STALE_S`` seconds (a dropped phone).

``{"type": "release"}``
    The driver stops driving: throttle goes to zero and the client becomes a
    watcher, so another client can take over.

Server to client
----------------
``{"type": "hello", "role": "driver" | "watcher", "watchdog_s": 0.5, "modes": [...], "state": {...}}``
    Sent once after connecting. ``modes`` lists the drive modes the car
    accepts: ``user`` alone when no pilot model is loaded.
``{"type": "role", "role": "driver" | "watcher", "reason": "..."}``
    Sent when the client's role changes or a take request is rejected.
``{"type": "state", "state": {...}}``
    Sent to every client five times a second. ``state`` contains the outputs
    (angle, throttle, mode, recording, estop, max_throttle), ``watchdog``
    (true while throttle is held at zero because the driver went silent),
    ``driver`` (whether someone drives), and the car's status values
    (loop_hz, record_count, pilot_angle, pilot_throttle, safe_angle,
    safe_throttle, sim_speed, viewers).
``{"type": "ack", "seq": 41}``
    The control message with that sequence number was applied.
``{"type": "error", "seq": 41 | null, "error": "..."}``
    A message was rejected and changed nothing; ``error`` says why.
``{"type": "pong", "t": 1234.5}``
    Answer to a ping.

A message is rejected as a whole when any field is invalid: not JSON, not an
object, larger than ``MAX_MESSAGE_BYTES``, an unknown type or field, a
non-number, NaN or infinity, a value out of range, or an unknown mode.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

MODES = ("user", "local_angle", "local")
PILOT_MODES = ("local_angle", "local")
ROLE_DRIVER = "driver"
ROLE_WATCHER = "watcher"

# A full control message is about 130 bytes; anything far larger is an error.
MAX_MESSAGE_BYTES = 1024

# A driver silent this long loses the driving role to a watcher that sends "take".
DRIVER_STALE_S = 2.0

MAX_SEQ = 2**53

_CONTROL_FIELDS = {"type", "seq", "angle", "throttle", "mode", "recording", "estop", "max_throttle"}
_PING_FIELDS = {"type", "t"}
_BARE_FIELDS = {"type"}


class ProtocolError(ValueError):
    """A client message is invalid; the text names the field and the reason."""

    def __init__(self, text: str, seq: int | None = None):
        super().__init__(text)
        self.seq = seq


@dataclass(frozen=True)
class Control:
    """A validated control message; None means the field was not sent."""

    seq: int
    angle: float | None = None
    throttle: float | None = None
    mode: str | None = None
    recording: bool | None = None
    estop: bool | None = None
    max_throttle: float | None = None

    def is_estop_only(self) -> bool:
        """Return True for a message that only engages the emergency stop."""
        others = (self.angle, self.throttle, self.mode, self.recording, self.max_throttle)
        return self.estop is True and all(value is None for value in others)


@dataclass(frozen=True)
class Ping:
    t: float


@dataclass(frozen=True)
class Take:
    pass


@dataclass(frozen=True)
class Release:
    pass


Message = Control | Ping | Take | Release


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not allowed; send finite numbers only")


def parse_message(raw: str | bytes) -> Message:
    """Validate one websocket message and return it as a typed object.

    Raises ProtocolError, carrying the message's ``seq`` when it had a valid one.
    """
    if isinstance(raw, bytes):
        raise ProtocolError("binary messages are not accepted; send JSON text")
    size = len(raw.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes is larger than the maximum of {MAX_MESSAGE_BYTES} bytes")

    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"message is not valid JSON: {error.msg} at character {error.pos}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"message must be a JSON object, got {type(data).__name__}")

    kind = data.get("type")
    if kind == "control":
        return _parse_control(data)
    if kind == "ping":
        _check_fields(data, _PING_FIELDS, None)
        return Ping(_number(data, "t", None, -math.inf, math.inf, required=True))
    if kind == "take":
        _check_fields(data, _BARE_FIELDS, None)
        return Take()
    if kind == "release":
        _check_fields(data, _BARE_FIELDS, None)
        return Release()
    raise ProtocolError(f"unknown message type {kind!r}; expected control, ping, take or release")


def _parse_control(data: dict[str, Any]) -> Control:
    seq_value = data.get("seq")
    if isinstance(seq_value, bool) or not isinstance(seq_value, int) or not 0 <= seq_value <= MAX_SEQ:
        raise ProtocolError(f"seq must be a whole number from 0 to {MAX_SEQ}, got {seq_value!r}")
    seq = seq_value

    _check_fields(data, _CONTROL_FIELDS, seq)
    if len(data) == 2:
        raise ProtocolError("control message has no fields to change besides seq", seq)

    mode = data.get("mode")
    if mode is not None and mode not in MODES:
        raise ProtocolError(f"mode must be one of {', '.join(MODES)}, got {mode!r}", seq)

    return Control(
        seq=seq,
        angle=_number(data, "angle", seq, -1.0, 1.0),
        throttle=_number(data, "throttle", seq, -1.0, 1.0),
        mode=mode,
        recording=_boolean(data, "recording", seq),
        estop=_boolean(data, "estop", seq),
        max_throttle=_number(data, "max_throttle", seq, 0.0, 1.0),
    )


def _check_fields(data: dict[str, Any], allowed: set[str], seq: int | None) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ProtocolError(
            f"unknown field {unknown[0]!r} in a {data['type']} message; allowed: {', '.join(sorted(allowed))}", seq
        )


def _number(data: dict[str, Any], name: str, seq: int | None, low: float, high: float, required: bool = False) -> float | None:
    if name not in data:
        if required:
            raise ProtocolError(f"{name} is missing", seq)
        return None
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{name} must be a number, got {value!r}", seq)
    try:
        value = float(value)
    except OverflowError:
        # A whole number too long for a float; JSON allows any number of digits.
        raise ProtocolError(f"{name} must be a number that fits a float, got a whole number of {len(str(value))} digits", seq) from None
    if not math.isfinite(value):
        raise ProtocolError(f"{name} must be a finite number, got {value!r}", seq)
    if not low <= value <= high:
        raise ProtocolError(f"{name} must be from {low:g} to {high:g}, got {value!r}", seq)
    return value


def _boolean(data: dict[str, Any], name: str, seq: int | None) -> bool | None:
    if name not in data:
        return None
    value = data[name]
    if not isinstance(value, bool):
        raise ProtocolError(f"{name} must be true or false, got {value!r}", seq)
    return value


def encode(kind: str, **fields: Any) -> str:
    """Return a server message as JSON text."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))
