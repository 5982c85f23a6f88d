"""Camera parts: picamera2, OpenCV, tub replay and the simulator's, all with the same outputs.

``create_camera(cfg)`` returns the part that ``camera.type`` selects. Every
camera outputs ``cam/image_array`` (RGB uint8, camera.height x camera.width x
3), ``cam/capture_time`` (time.monotonic seconds) and ``cam/frame_number``;
``add_camera(vehicle, part)`` adds any of them with its outputs and threading.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from autodrive import hardware
from autodrive.errors import MissingDependencyError
from autodrive.parts.cameras.base import CameraError, CameraPart, StaleFrameError, ThreadedCamera, to_rgb

log = logging.getLogger(__name__)

__all__ = [
    "CameraError",
    "CameraPart",
    "StaleFrameError",
    "ThreadedCamera",
    "add_camera",
    "create_camera",
    "find_picamera2",
    "to_rgb",
]


def find_picamera2() -> tuple[bool, str]:
    """Return whether picamera2 is importable and detects a camera, and why not when it does not."""
    from autodrive.parts.cameras import picam

    try:
        cameras = picam.connected_cameras()
    except MissingDependencyError:
        return False, "picamera2 is not installed"
    except (RuntimeError, OSError) as error:
        return False, f"picamera2 could not list cameras: {error}"
    if not cameras:
        return False, "picamera2 found no camera"
    model = cameras[0].get("Model", "unknown model") if isinstance(cameras[0], dict) else "camera"
    return True, f"picamera2 found {len(cameras)} camera(s), the first a {model}"


def create_camera(cfg: Any, sim: Any = None, on_end: Callable[[str], Any] | None = None) -> Any:
    """Return the camera part that ``camera.type`` selects.

    ``auto`` picks picamera2 when it is installed and detects a camera, else the
    simulator, and logs one line saying which and why. ``sim`` is the
    simulator world to use (by default the one ``autodrive.hardware.sim_world``
    shares with the drivetrain); ``on_end`` is called when a replay ends.
    """
    kind = cfg.camera.type
    if kind == "auto":
        found, reason = find_picamera2()
        kind = "picamera2" if found else "sim"
        log.info("camera.type auto: using %s because %s", "picamera2" if found else "the simulator", reason)

    if kind == "picamera2":
        from autodrive.parts.cameras.picam import Picamera2Camera

        return Picamera2Camera.from_config(cfg)
    if kind == "opencv":
        from autodrive.parts.cameras.opencv import OpenCVCamera

        return OpenCVCamera.from_config(cfg)
    if kind == "replay":
        from autodrive.parts.cameras.replay import ReplayCamera

        return ReplayCamera.from_config(cfg, on_end=on_end)

    world = sim if sim is not None else hardware.sim_world(cfg)
    return world.camera_part()


def add_camera(vehicle: Any, part: Any, name: str = "camera") -> Any:
    """Add a camera part to ``vehicle`` with its outputs and threading; return the PartEntry.

    Parts without ``outputs``/``threaded`` attributes (the simulator's
    camera) get the three standard camera channels and run on the loop.
    """
    outputs = getattr(part, "outputs", CameraPart.outputs)
    threaded = getattr(part, "threaded", False)
    return vehicle.add(part, outputs=outputs, threaded=threaded, name=name)
