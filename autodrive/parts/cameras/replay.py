"""A camera that plays a recorded tub's frames in order, one per loop, with their labels.

Running a pilot on a replay shows what it would have done on real recorded
input: ``replay/angle`` and ``replay/throttle`` carry the person's commands
recorded with the frame that ``cam/image_array`` holds.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from autodrive.channels import REPLAY_ANGLE, REPLAY_INDEX, REPLAY_THROTTLE, USER_ANGLE, USER_THROTTLE
from autodrive.errors import ConfigError
from autodrive.parts.cameras.base import CameraError, CameraPart, to_rgb

log = logging.getLogger(__name__)


class ReplayFinished(CameraError):
    """The replay camera played the last frame of its tub and camera.replay_loop is false."""


class ReplayCamera(CameraPart):
    """Camera part that outputs the next recorded frame of a tub on every ``run()``.

    Outputs: ``cam/image_array``, ``cam/capture_time``, ``cam/frame_number``
    (from 0, counting frames output), ``replay/angle``, ``replay/throttle``
    (the recorded user/angle and user/throttle, None where missing) and
    ``replay/index`` (the record index). The capture time is ``clock()`` when
    the frame is output, because a tub's timestamps are not times of this run.

    After the last frame it starts again when ``loop`` is true; otherwise it
    calls ``on_end(reason)`` when given (for example ``vehicle.stop``), and
    a further ``run()`` raises ReplayFinished. Records whose image is
    missing or unreadable are skipped and counted in ``skipped``.
    """

    outputs = CameraPart.outputs + (REPLAY_ANGLE, REPLAY_THROTTLE, REPLAY_INDEX)
    threaded = False
    name = "replay"

    def __init__(
        self,
        tub_path: str | Path,
        width: int = 160,
        height: int = 120,
        loop: bool = False,
        hflip: bool = False,
        vflip: bool = False,
        on_end: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        from autodrive.tub import open_tub

        self.tub = open_tub(tub_path)
        self.records = list(self.tub.records())
        if not self.records:
            raise ConfigError(f"camera.replay_tub {tub_path} has no records to replay")
        self.width = width
        self.height = height
        self.loop = loop
        self.hflip = hflip
        self.vflip = vflip
        self.on_end = on_end
        self.clock = clock
        self.position = 0
        self.frames_output = 0
        self.skipped = 0
        self.current_record: Any = None
        self._finished = False
        log.info("replay camera: %d records from %s", len(self.records), self.tub.path)

    def run(self) -> tuple[np.ndarray, float, int, float | None, float | None, int]:
        """Return the next frame, its output time and number, and its recorded angle, throttle and index."""
        if self._finished:
            raise ReplayFinished(f"replay camera: all {len(self.records)} records of {self.tub.path} were played")
        record, image = self._next_record()
        self.current_record = record
        frame = to_rgb(image, "rgb", self.width, self.height, self.hflip, self.vflip)
        number = self.frames_output
        self.frames_output += 1
        outputs = (
            frame,
            self.clock(),
            number,
            record.values.get(USER_ANGLE),
            record.values.get(USER_THROTTLE),
            record.index,
        )
        if self.position >= len(self.records) and not self.loop:
            self._end()
        return outputs

    def run_threaded(self) -> tuple[np.ndarray, float, int, float | None, float | None, int]:
        """Same as ``run()``: the replay advances one frame per loop either way."""
        return self.run()

    def update(self) -> None:
        """Do nothing: frames are read on the loop's thread, one per ``run()``."""

    def shutdown(self) -> None:
        if self.skipped:
            log.warning("replay camera skipped %d records whose image could not be read", self.skipped)

    def _next_record(self) -> tuple[Any, np.ndarray]:
        from autodrive.tub import TubError

        for _ in range(len(self.records)):
            if self.position >= len(self.records):
                if not self.loop:
                    self._end()
                    raise ReplayFinished(f"replay camera: the last records of {self.tub.path} have no readable image")
                self.position = 0
            record = self.records[self.position]
            self.position += 1
            try:
                return record, self.tub.load_image(record)
            except TubError as error:
                self.skipped += 1
                log.warning("replay camera: skipping record %d: %s", record.index, error)
        raise CameraError(f"replay camera: no record of {self.tub.path} has a readable image")

    def _end(self) -> None:
        self._finished = True
        reason = f"replay of {self.tub.path} finished after {self.frames_output} frames"
        log.info(reason)
        if self.on_end is not None:
            self.on_end(reason)

    @classmethod
    def from_config(cls, cfg: Any, on_end: Callable[[str], Any] | None = None) -> "ReplayCamera":
        camera = cfg.camera
        if camera.replay_tub is None:
            raise ConfigError("camera.type replay needs camera.replay_tub, the tub folder to play")
        return cls(
            cfg.car_file(camera.replay_tub),
            width=camera.width,
            height=camera.height,
            loop=camera.replay_loop,
            hflip=camera.hflip,
            vflip=camera.vflip,
            on_end=on_end,
        )
