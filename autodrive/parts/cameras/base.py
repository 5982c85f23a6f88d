"""Shared camera machinery: frame conversion to RGB, the capture thread, and the stale-frame check."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import numpy as np

from autodrive.channels import CAMERA_FRAME, CAMERA_IMAGE, CAMERA_TIME
from autodrive.errors import PartError

log = logging.getLogger(__name__)

# How long run_threaded() waits for the first frame after start-up; cameras
# need up to a second or two to start streaming.
FIRST_FRAME_TIMEOUT_S = 5.0


class CameraError(PartError):
    """A camera failed while the car was driving; the message names the camera."""


class StaleFrameError(CameraError):
    """The newest frame is older than camera.max_age_ms."""


def to_rgb(
    frame: np.ndarray,
    channel_order: str,
    width: int,
    height: int,
    hflip: bool = False,
    vflip: bool = False,
) -> np.ndarray:
    """Return ``frame`` as a contiguous RGB uint8 array of ``height`` x ``width`` x 3.

    ``channel_order`` is the order of the colour channels in memory: "rgb",
    "bgr" (OpenCV, and picamera2's RGB888), "bgra"/"bgrx" (picamera2's
    XRGB8888), or "gray". Frames of another size are resized with area
    interpolation.
    """
    import cv2

    if frame.dtype != np.uint8:
        raise CameraError(f"camera delivered {frame.dtype} pixels; expected uint8")
    if frame.ndim == 2 or channel_order == "gray":
        frame = cv2.cvtColor(frame.reshape(frame.shape[0], frame.shape[1]), cv2.COLOR_GRAY2RGB)
    elif channel_order in ("bgr", "bgra", "bgrx"):
        frame = frame[:, :, 2::-1]
    elif channel_order in ("rgb", "rgba", "rgbx"):
        frame = frame[:, :, :3]
    else:
        raise ValueError(f"unknown channel order {channel_order!r}")

    if frame.shape[0] != height or frame.shape[1] != width:
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    if vflip:
        frame = frame[::-1]
    if hflip:
        frame = frame[:, ::-1]
    return np.ascontiguousarray(frame)


class CameraPart:
    """Base of the camera parts: outputs a frame, its capture time and its sequence number.

    Outputs (``outputs``): ``cam/image_array`` (RGB uint8, ``height`` x
    ``width`` x 3), ``cam/capture_time`` (``clock()`` seconds, by default
    ``time.monotonic``) and ``cam/frame_number`` (from 0). Add it to the
    vehicle with ``threaded=part.threaded``.
    """

    outputs: tuple[str, ...] = (CAMERA_IMAGE, CAMERA_TIME, CAMERA_FRAME)
    threaded = True
    name = "camera"


class ThreadedCamera(CameraPart):
    """A camera whose ``update()`` thread captures frames while the loop reads the newest one.

    Subclasses implement ``capture()`` (block until the next raw frame and
    return it, or return None when none came, after setting ``problem``) and
    ``close_backend()``. ``run_threaded()`` raises StaleFrameError when the
    newest frame is older than ``max_age_ms``, and CameraError when the
    capture thread failed or no first frame came within 5 s.
    """

    channel_order = "bgr"

    def __init__(
        self,
        width: int,
        height: int,
        max_age_ms: float = 500,
        hflip: bool = False,
        vflip: bool = False,
        fps: float = 20,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.width = width
        self.height = height
        self.max_age_ms = max_age_ms
        self.hflip = hflip
        self.vflip = vflip
        self.fps = fps
        self.clock = clock
        self.problem = ""  # the latest reason capture() returned no frame
        self.frames_captured = 0
        self.empty_captures = 0

        self._lock = threading.Lock()
        self._first_frame = threading.Event()
        self._running = True
        self._closed = False
        self._latest: tuple[np.ndarray, float, int] | None = None
        self._thread_error: BaseException | None = None

    # -- subclass interface --------------------------------------------------

    def capture(self) -> np.ndarray | None:
        raise NotImplementedError

    def close_backend(self) -> None:
        raise NotImplementedError

    # -- the part contract ---------------------------------------------------

    def update(self) -> None:
        """Capture frames until ``shutdown()``; the thread body of a threaded part."""
        try:
            while self._running:
                self._capture_one()
        except BaseException as error:
            self._thread_error = error
            raise

    def run_threaded(self) -> tuple[np.ndarray, float, int]:
        """Return the newest (frame, capture time, frame number) without waiting, once the first frame came."""
        if self._thread_error is not None:
            raise CameraError(f"{self.name} camera: capture failed: {self._thread_error!r}") from self._thread_error
        latest = self._latest
        if latest is None:
            if not self._first_frame.wait(FIRST_FRAME_TIMEOUT_S) or self._latest is None:
                raise CameraError(
                    f"{self.name} camera delivered no frame within {FIRST_FRAME_TIMEOUT_S:g} s of start"
                    + (f" ({self.problem})" if self.problem else "")
                )
            latest = self._latest
        age_ms = (self.clock() - latest[1]) * 1000.0
        if age_ms > self.max_age_ms:
            raise StaleFrameError(
                f"{self.name} camera: newest frame {latest[2]} is {age_ms:.0f} ms old, more than "
                f"camera.max_age_ms = {self.max_age_ms:g}" + (f" ({self.problem})" if self.problem else "")
            )
        return latest

    def run(self) -> tuple[np.ndarray, float, int]:
        """Capture one frame now and return it; for use as a non-threaded part."""
        if self._closed:
            raise CameraError(f"{self.name} camera used after shutdown()")
        deadline = self.clock() + self.max_age_ms / 1000.0
        while True:
            if self._capture_one():
                return self._latest
            if self.clock() > deadline:
                raise StaleFrameError(
                    f"{self.name} camera delivered no frame within camera.max_age_ms = {self.max_age_ms:g}"
                    + (f" ({self.problem})" if self.problem else "")
                )

    def shutdown(self) -> None:
        """Stop the capture thread and release the camera; safe to call more than once."""
        self._running = False
        if self._closed:
            return
        self._closed = True
        try:
            self.close_backend()
        finally:
            log.info("%s camera stopped after %d frames", self.name, self.frames_captured)

    # -- internals -----------------------------------------------------------

    def _capture_one(self) -> bool:
        raw = self.capture()
        if raw is None:
            self.empty_captures += 1
            if self.empty_captures in (1, 10, 100) or self.empty_captures % 1000 == 0:
                log.warning("%s camera returned no frame (%d times so far): %s", self.name, self.empty_captures, self.problem)
            # Wait about one frame period before asking again instead of spinning.
            time.sleep(1.0 / max(self.fps, 1.0))
            return False
        captured_s = self.clock()
        frame = to_rgb(raw, self.channel_order, self.width, self.height, self.hflip, self.vflip)
        with self._lock:
            self._latest = (frame, captured_s, self.frames_captured)
            self.frames_captured += 1
        self._first_frame.set()
        return True


def camera_settings(cfg: Any) -> dict[str, Any]:
    """Return the ThreadedCamera keyword arguments from ``cfg.camera``."""
    camera = cfg.camera
    return {
        "width": camera.width,
        "height": camera.height,
        "max_age_ms": camera.max_age_ms,
        "hflip": camera.hflip,
        "vflip": camera.vflip,
        "fps": camera.fps,
    }
