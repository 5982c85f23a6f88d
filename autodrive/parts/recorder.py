"""The recorder part: writes frames and commands to the car's tub while recording is on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

from autodrive import channels
from autodrive.tub.record import IMAGE_TYPES
from autodrive.tub.writer import TubWriter

log = logging.getLogger(__name__)

DEFAULT_INPUTS = (channels.CAMERA_IMAGE, channels.USER_ANGLE, channels.USER_THROTTLE, channels.USER_MODE)
DEFAULT_TYPES = ("image_array", "float", "float", "str")

# Channels the part reads before the recorded ones, in this order.
CONTROL_INPUTS = (channels.RECORDING, channels.USER_THROTTLE, channels.USER_MODE)


class Recorder:
    """Record ``inputs`` into a Tub v2 while ``recording`` is true.

    With ``auto_on_throttle`` it also records while the user throttle is
    above ``throttle_threshold`` in user mode. A loop iteration whose image
    is None (camera not ready) is skipped. ``run`` does no disk I/O. It
    appends the values to a ``TubWriter`` queue and returns the number of
    records written so far in this session.

    Add it to a Vehicle with ``inputs=recorder.vehicle_inputs`` and
    ``outputs=[channels.RECORD_COUNT]``.
    """

    def __init__(self, tub_path: str | Path, inputs: Sequence[str] = DEFAULT_INPUTS,
                 types: Sequence[str] = DEFAULT_TYPES, *, auto_on_throttle: bool = False,
                 throttle_threshold: float = 0.05, metadata: dict[str, Any] | None = None,
                 **writer_options: Any):
        self.inputs = list(inputs)
        self.types = list(types)
        self.auto_on_throttle = auto_on_throttle
        self.throttle_threshold = float(throttle_threshold)
        self.writer = TubWriter(tub_path, self.inputs, self.types, metadata, **writer_options)
        self.skipped_without_image = 0
        self._image_positions = [position for position, kind in enumerate(self.types) if kind in IMAGE_TYPES]
        self._was_recording = False

    @classmethod
    def from_config(cls, cfg: Any, inputs: Iterable[str] | None = None,
                    types: Iterable[str] | None = None, metadata: dict[str, Any] | None = None) -> "Recorder":
        """Build a recorder from the ``recording`` section of a Config.

        ``inputs`` and ``types`` default to the camera image, user angle,
        user throttle and user mode. The drive assembly may pass more, such
        as pilot/angle and pilot/throttle.
        """
        section = cfg.recording
        return cls(
            cfg.car_file(section.tub),
            list(inputs) if inputs is not None else DEFAULT_INPUTS,
            list(types) if types is not None else DEFAULT_TYPES,
            auto_on_throttle=section.auto_on_throttle,
            throttle_threshold=section.throttle_threshold,
            metadata=metadata,
            jpeg_quality=section.jpeg_quality,
            fsync_interval_s=section.fsync_interval_s,
            queue_size=section.queue_size,
        )

    @property
    def vehicle_inputs(self) -> list[str]:
        """Channels to pass to ``Vehicle.add``: the control channels, then the recorded ones."""
        return list(CONTROL_INPUTS) + self.inputs

    @property
    def count(self) -> int:
        """Records written in this session."""
        return self.writer.count

    def should_record(self, recording: Any, throttle: Any, mode: Any) -> bool:
        """Return True when this loop iteration is recorded."""
        if recording:
            return True
        if not self.auto_on_throttle or mode != "user" or not isinstance(throttle, (int, float)):
            return False
        return throttle > self.throttle_threshold

    def run(self, recording: Any, throttle: Any, mode: Any, *values: Any) -> int:
        """Queue one record when recording is on; return the session's record count."""
        active = self.should_record(recording, throttle, mode)
        if active != self._was_recording:
            log.info("recording %s (%d records so far)", "started" if active else "stopped", self.writer.count)
            self._was_recording = active
        if not active:
            return self.writer.count

        for position in self._image_positions:
            if values[position] is None:
                self.skipped_without_image += 1
                return self.writer.count
        if not self.writer.write_row(values):
            self._log_drop()
        return self.writer.count

    def _log_drop(self) -> None:
        dropped = self.writer.dropped
        if dropped in (1, 10, 100) or dropped % 1000 == 0:
            reason = f"the writer failed: {self.writer.error}" if self.writer.error else "the writer fell behind"
            log.warning("recorder dropped %d records so far, because %s", dropped, reason)

    def shutdown(self) -> None:
        """Write what is queued and close the tub."""
        self.writer.close()
        if self.skipped_without_image:
            log.info("recorder skipped %d loop iterations that had no camera image", self.skipped_without_image)
