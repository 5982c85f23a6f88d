"""Fake camera backends: a picamera2 class and an OpenCV VideoCapture that deliver known frames.

Both deliver frames the way the real library lays them out in memory: BGR,
which is what picamera2's "RGB888" format and OpenCV's ``read()`` return.
"""

from __future__ import annotations

import numpy as np

RED_BGR = (0, 0, 255)
BLUE_BGR = (255, 0, 0)


def red_left_blue_right(width: int, height: int) -> np.ndarray:
    """Return a BGR frame whose left half is red and right half is blue."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:, : width // 2] = RED_BGR
    frame[:, width // 2:] = BLUE_BGR
    return frame


class FakePicamera2:
    """Stands in for ``picamera2.Picamera2``: one camera, frames of the configured size.

    ``cameras`` is what ``global_camera_info()`` returns; ``instances``
    collects every camera opened, so a test can inspect its configuration.
    """

    cameras = [{"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/fake", "Num": 0}]
    instances: list["FakePicamera2"] = []

    def __init__(self, camera_num: int = 0):
        self.configuration = None
        self.started = False
        self.closed = False
        self.frames_delivered = 0
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict]:
        return list(FakePicamera2.cameras)

    def create_video_configuration(self, main=None, controls=None, **kwargs):
        return {"main": dict(main or {}), "controls": dict(controls or {}), **kwargs}

    def configure(self, configuration) -> None:
        self.configuration = configuration

    def start(self) -> None:
        if self.configuration is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        if not self.started:
            raise RuntimeError("Camera is not running")
        width, height = self.configuration["main"]["size"]
        self.frames_delivered += 1
        return red_left_blue_right(width, height)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


class FakeVideoCapture:
    """Stands in for ``cv2.VideoCapture``: delivers ``frame_count`` copies of ``frame``, then nothing.

    ``frame_count`` None delivers frames forever; ``error`` makes ``read()``
    raise it once the frames are used up.
    """

    def __init__(self, device, frame: np.ndarray | None = None, frame_count: int | None = None,
                 opened: bool = True, error: BaseException | None = None):
        self.device = device
        self.frame = red_left_blue_right(640, 480) if frame is None else frame
        self.frame_count = frame_count
        self.opened = opened
        self.error = error
        self.properties: dict[int, float] = {}
        self.reads = 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened and not self.released

    def set(self, prop: int, value: float) -> bool:
        self.properties[prop] = value
        return True

    def read(self):
        self.reads += 1
        if self.frame_count is not None and self.reads > self.frame_count:
            if self.error is not None:
                raise self.error
            return False, None
        return True, self.frame.copy()

    def release(self) -> None:
        self.released = True
