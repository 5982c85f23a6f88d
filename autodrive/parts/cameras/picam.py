"""The Raspberry Pi camera through picamera2 (libcamera).

picamera2 comes from the OS package ``python3-picamera2`` on Raspberry Pi OS;
pip cannot build it elsewhere. It is reached only through ``picamera2_class()``,
which tests replace with a fake.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np

from autodrive.errors import NotAvailableError, require
from autodrive.parts.cameras.base import ThreadedCamera, camera_settings

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "sudo apt install python3-picamera2 (Raspberry Pi OS), and make the virtual environment "
    "with --system-site-packages so it is seen; on a laptop use camera.type: sim"
)


def picamera2_class() -> Any:
    """Return the ``picamera2.Picamera2`` class, or raise MissingDependencyError saying how to install it."""
    return require("picamera2", hint=INSTALL_HINT).Picamera2


def connected_cameras() -> list[dict]:
    """Return libcamera's list of connected cameras (empty when there is none)."""
    return list(picamera2_class().global_camera_info())


class Picamera2Camera(ThreadedCamera):
    """Pi camera part: picamera2 delivers frames at the configured size, converted to RGB.

    picamera2's "RGB888" format is BGR in memory (libcamera names formats
    by their 32-bit word, least significant byte last), so the frames are
    reordered like OpenCV's.
    """

    name = "picamera2"
    channel_order = "bgr"

    def __init__(self, width: int, height: int, fps: float = 20, clock: Callable[[], float] = time.monotonic, **settings: Any):
        super().__init__(width, height, fps=fps, clock=clock, **settings)
        camera_class = picamera2_class()
        if not camera_class.global_camera_info():
            raise NotAvailableError(
                "picamera2 found no camera: check the ribbon cable and run 'rpicam-hello --list-cameras'; "
                "on a machine without a camera use camera.type: sim"
            )
        self.camera = None
        try:
            self.camera = camera_class()
            configuration = self.camera.create_video_configuration(
                main={"size": (width, height), "format": "RGB888"},
                controls={"FrameRate": float(fps)},
            )
            self.camera.configure(configuration)
            self.camera.start()
        except (RuntimeError, OSError, ValueError) as error:
            if self.camera is not None:
                self.camera.close()
            raise NotAvailableError(
                f"picamera2 could not start the camera: {error}; check that no other program "
                "(rpicam-hello, another autodrive) is using it"
            ) from error
        log.info("picamera2 camera started: %dx%d at %g fps", width, height, fps)

    def capture(self) -> np.ndarray | None:
        return self.camera.capture_array("main")

    def close_backend(self) -> None:
        try:
            self.camera.stop()
        finally:
            self.camera.close()

    @classmethod
    def from_config(cls, cfg: Any) -> "Picamera2Camera":
        return cls(**camera_settings(cfg))
