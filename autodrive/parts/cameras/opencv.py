"""A USB camera (or any V4L2 device) through OpenCV's VideoCapture.

OpenCV is reached only through ``open_video_capture()``, which tests replace
with a fake.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np

from autodrive.errors import NotAvailableError
from autodrive.parts.cameras.base import ThreadedCamera, camera_settings

log = logging.getLogger(__name__)


def parse_device(device: str | int) -> str | int:
    """Return a camera index as int ("0" becomes 0) and a device path unchanged."""
    text = str(device).strip()
    return int(text) if text.isdigit() else text


def open_video_capture(device: str | int) -> Any:
    """Return a ``cv2.VideoCapture`` for ``device``, an index or a device path."""
    import cv2

    return cv2.VideoCapture(device)


class OpenCVCamera(ThreadedCamera):
    """USB camera part: OpenCV delivers BGR frames, resized and converted to RGB.

    The capture size and rate are requested from the driver; a camera that
    ignores them is resized in software.
    """

    name = "opencv"
    channel_order = "bgr"

    def __init__(
        self,
        device: str | int = 0,
        width: int = 160,
        height: int = 120,
        fps: float = 20,
        clock: Callable[[], float] = time.monotonic,
        **settings: Any,
    ):
        super().__init__(width, height, fps=fps, clock=clock, **settings)
        import cv2

        self.device = parse_device(device)
        self.capture_device = open_video_capture(self.device)
        if not self.capture_device.isOpened():
            self.capture_device.release()
            raise NotAvailableError(
                f"OpenCV could not open camera {self.device!r} (camera.device): check that it is plugged in "
                "and listed by 'ls /dev/video*', or use camera.type: sim on a machine without a camera"
            )
        self.capture_device.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self.capture_device.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self.capture_device.set(cv2.CAP_PROP_FPS, fps)
        log.info("OpenCV camera %r opened for %dx%d at %g fps", self.device, width, height, fps)

    def capture(self) -> np.ndarray | None:
        ok, frame = self.capture_device.read()
        if not ok or frame is None:
            self.problem = f"cv2.VideoCapture({self.device!r}).read() returned no frame"
            return None
        return frame

    def close_backend(self) -> None:
        self.capture_device.release()

    @classmethod
    def from_config(cls, cfg: Any) -> "OpenCVCamera":
        return cls(device=cfg.camera.device, **camera_settings(cfg))
