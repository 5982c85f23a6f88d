"""Camera parts: picamera2 and OpenCV over fake backends, tub replay on the real recorded tub."""

import logging
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from autodrive.channels import CAMERA_FRAME, CAMERA_IMAGE, CAMERA_TIME, REPLAY_ANGLE, REPLAY_INDEX, REPLAY_THROTTLE
from autodrive.config import default_config
from autodrive.errors import ConfigError, MissingDependencyError, NotAvailableError
from autodrive.parts import cameras
from autodrive.parts.cameras import CameraError, StaleFrameError, create_camera
from autodrive.parts.cameras import base, opencv, picam
from autodrive.parts.cameras.opencv import OpenCVCamera
from autodrive.parts.cameras.picam import Picamera2Camera
from autodrive.parts.cameras.replay import ReplayCamera, ReplayFinished
from autodrive.sim.parts import SimCamera
from autodrive.tub import open_tub
from autodrive.vehicle import Vehicle
from tests.fakes.camera import FakePicamera2, FakeVideoCapture

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRACK_TUB = DATA / "tubs" / "donkeycar-track-2020"
RED = [255, 0, 0]
BLUE = [0, 0, 255]


class FakeClock:
    def __init__(self):
        self.now_s = 1000.0

    def __call__(self):
        return self.now_s


class AdvanceClock:
    """Part that moves a FakeClock forward by ``step_s`` on every loop."""

    def __init__(self, clock, step_s):
        self.clock = clock
        self.step_s = step_s

    def run(self):
        self.clock.now_s += self.step_s


class Collect:
    """Part that keeps every value of its inputs, one tuple per loop."""

    def __init__(self):
        self.rows = []

    def run(self, *values):
        self.rows.append(values)


@pytest.fixture
def fake_picamera2(monkeypatch):
    FakePicamera2.instances = []
    monkeypatch.setattr(picam, "picamera2_class", lambda: FakePicamera2)
    return FakePicamera2


@pytest.fixture
def fake_capture(monkeypatch):
    """Make OpenCVCamera open FakeVideoCapture objects built by ``fake_capture.options``."""

    class Factory:
        options = {}
        opened = []

        def __call__(self, device):
            capture = FakeVideoCapture(device, **self.options)
            self.opened.append(capture)
            return capture

    factory = Factory()
    monkeypatch.setattr(opencv, "open_video_capture", factory)
    return factory


def assert_red_left_blue_right(image, width, height):
    assert image.dtype == np.uint8
    assert image.shape == (height, width, 3)
    assert (image[:, : width // 2 - 1] == RED).all()
    assert (image[:, width // 2 + 1:] == BLUE).all()


# -- picamera2 ------------------------------------------------------------------


def test_picamera2_outputs_rgb(fake_picamera2):
    camera = create_camera(default_config(camera__type="picamera2"))

    image, capture_time, number = camera.run()

    assert isinstance(camera, Picamera2Camera)
    assert_red_left_blue_right(image, 160, 120)
    assert number == 0
    assert isinstance(capture_time, float)


def test_picamera2_configured_size_and_rate(fake_picamera2):
    create_camera(default_config(camera__type="picamera2", camera__width=320, camera__height=240, camera__fps=30))

    configuration = fake_picamera2.instances[-1].configuration
    assert configuration["main"] == {"size": (320, 240), "format": "RGB888"}
    assert configuration["controls"] == {"FrameRate": 30.0}


def test_picamera2_in_vehicle_thread(fake_picamera2):
    camera = create_camera(default_config(camera__type="picamera2"))
    collect = Collect()
    vehicle = Vehicle()
    vehicle.add(camera, outputs=camera.outputs, threaded=camera.threaded)
    vehicle.add(collect, inputs=[CAMERA_IMAGE, CAMERA_TIME, CAMERA_FRAME])

    report = vehicle.start(rate_hz=50, max_loops=5)

    assert report.clean, report.reason
    assert len(collect.rows) == 5
    for image, capture_time, number in collect.rows:
        assert_red_left_blue_right(image, 160, 120)
    numbers = [row[2] for row in collect.rows]
    assert numbers == sorted(numbers)
    assert fake_picamera2.instances[-1].closed


def test_picamera2_missing_names_os_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)

    with pytest.raises(MissingDependencyError, match="sudo apt install python3-picamera2"):
        create_camera(default_config(camera__type="picamera2"))


def test_picamera2_without_camera(fake_picamera2, monkeypatch):
    monkeypatch.setattr(FakePicamera2, "cameras", [])

    with pytest.raises(NotAvailableError, match="found no camera.*camera.type: sim"):
        create_camera(default_config(camera__type="picamera2"))


def test_picamera2_busy_says_why(fake_picamera2, monkeypatch):
    def busy(self):
        raise RuntimeError("Failed to acquire camera: Device or resource busy")

    monkeypatch.setattr(FakePicamera2, "start", busy)

    with pytest.raises(NotAvailableError, match="resource busy.*no other program"):
        create_camera(default_config(camera__type="picamera2"))
    assert fake_picamera2.instances[-1].closed


def test_auto_picks_picamera2(fake_picamera2, caplog):
    caplog.set_level(logging.INFO, logger="autodrive.parts.cameras")

    camera = create_camera(default_config(camera__type="auto"))

    assert isinstance(camera, Picamera2Camera)
    assert any("using picamera2 because picamera2 found 1 camera" in message for message in caplog.messages)


def test_auto_without_picamera2_uses_simulator(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    caplog.set_level(logging.INFO, logger="autodrive.parts.cameras")

    camera = create_camera(default_config(camera__type="auto"))
    image, _, number = camera.run()

    assert isinstance(camera, SimCamera)
    assert image.shape == (120, 160, 3)
    assert number == 0
    assert sum("camera.type auto" in message for message in caplog.messages) == 1
    assert any("the simulator because picamera2 is not installed" in message for message in caplog.messages)


# -- OpenCV ---------------------------------------------------------------------


def test_opencv_resizes_and_converts(fake_capture):
    camera = create_camera(default_config(camera__type="opencv"))

    image, _, number = camera.run()

    assert isinstance(camera, OpenCVCamera)
    assert fake_capture.opened[-1].frame.shape == (480, 640, 3)
    assert_red_left_blue_right(image, 160, 120)
    assert number == 0


def test_opencv_device_index_and_path(fake_capture):
    create_camera(default_config(camera__type="opencv", camera__device="2"))
    create_camera(default_config(camera__type="opencv", camera__device="/dev/video4"))

    assert fake_capture.opened[0].device == 2
    assert fake_capture.opened[1].device == "/dev/video4"


def test_opencv_requests_size_and_rate(fake_capture):
    import cv2

    create_camera(default_config(camera__type="opencv", camera__fps=30))

    properties = fake_capture.opened[-1].properties
    assert properties[cv2.CAP_PROP_FRAME_WIDTH] == 160
    assert properties[cv2.CAP_PROP_FRAME_HEIGHT] == 120
    assert properties[cv2.CAP_PROP_FPS] == 30


def test_opencv_not_opened_says_what_to_try(fake_capture):
    fake_capture.options = {"opened": False}

    with pytest.raises(NotAvailableError, match="could not open camera 0.*camera.type: sim"):
        create_camera(default_config(camera__type="opencv"))
    assert fake_capture.opened[-1].released


def test_flips(fake_capture):
    camera = create_camera(default_config(camera__type="opencv", camera__hflip=True))

    image, _, _ = camera.run()

    assert (image[:, :70] == BLUE).all()
    assert (image[:, 90:] == RED).all()


def test_vflip_turns_upside_down(fake_capture):
    frame = np.zeros((120, 160, 3), dtype=np.uint8)
    frame[:60] = (0, 0, 255)
    fake_capture.options = {"frame": frame}
    camera = create_camera(default_config(camera__type="opencv", camera__vflip=True))

    image, _, _ = camera.run()

    assert (image[:60] == 0).all()
    assert (image[60:] == RED).all()


# -- stale and failed cameras -----------------------------------------------------


def test_stale_frame_raises(fake_capture):
    fake_capture.options = {"frame_count": 1}
    clock = FakeClock()
    camera = OpenCVCamera(device=0, width=160, height=120, max_age_ms=500, clock=clock)
    camera._capture_one()

    image, capture_time, number = camera.run_threaded()
    clock.now_s += 0.6

    assert capture_time == 1000.0
    with pytest.raises(StaleFrameError, match="600 ms old.*camera.max_age_ms = 500"):
        camera.run_threaded()


def test_stale_frame_stops_vehicle(fake_capture):
    fake_capture.options = {"frame_count": 1}
    clock = FakeClock()
    camera = OpenCVCamera(device=0, width=160, height=120, max_age_ms=500, clock=clock)
    vehicle = Vehicle()
    vehicle.add(camera, outputs=camera.outputs, threaded=True)
    vehicle.add(AdvanceClock(clock, 0.2))

    report = vehicle.start(rate_hz=None, max_loops=100)

    assert not report.clean
    assert isinstance(report.error.__cause__, StaleFrameError)
    assert report.loops == 3
    assert "returned no frame" in str(report.error)


def test_no_first_frame_raises(fake_capture, monkeypatch):
    monkeypatch.setattr(base, "FIRST_FRAME_TIMEOUT_S", 0.05)
    fake_capture.options = {"frame_count": 0}
    camera = create_camera(default_config(camera__type="opencv"))

    with pytest.raises(CameraError, match="no frame within 0.05 s"):
        camera.run_threaded()


def test_capture_thread_failure_raises(fake_capture):
    fake_capture.options = {"frame_count": 1, "error": OSError("device unplugged")}
    camera = create_camera(default_config(camera__type="opencv"))
    thread = threading.Thread(target=lambda: pytest.raises(OSError, camera.update))
    thread.start()
    thread.join(timeout=30)

    with pytest.raises(CameraError, match="capture failed.*device unplugged"):
        camera.run_threaded()


def test_shutdown_releases_camera(fake_capture):
    camera = create_camera(default_config(camera__type="opencv"))

    camera.shutdown()
    camera.shutdown()

    assert fake_capture.opened[-1].released
    with pytest.raises(CameraError, match="after shutdown"):
        camera.run()


# -- replay ---------------------------------------------------------------------


def replay_config(tub_path, **overrides):
    return default_config(camera__type="replay", camera__replay_tub=str(tub_path), **overrides)


def test_replay_plays_frames_with_labels():
    tub = open_tub(TRACK_TUB)
    records = list(tub.records())
    camera = create_camera(replay_config(TRACK_TUB))

    for number, record in enumerate(records[:40]):
        image, _, frame_number, angle, throttle, index = camera.run()

        assert frame_number == number
        assert index == record.index
        assert angle == record.values["user/angle"]
        assert throttle == record.values["user/throttle"]
        assert np.array_equal(image, tub.load_image(record))
        assert camera.current_record.index == record.index


def test_replay_whole_tub_in_vehicle():
    tub = open_tub(TRACK_TUB)
    vehicle = Vehicle()
    camera = create_camera(replay_config(TRACK_TUB), on_end=vehicle.stop)
    collect = Collect()
    vehicle.add(camera, outputs=camera.outputs, threaded=camera.threaded)
    vehicle.add(collect, inputs=[CAMERA_FRAME, REPLAY_INDEX, REPLAY_ANGLE, REPLAY_THROTTLE])

    report = vehicle.start(rate_hz=None)

    assert report.clean, report.reason
    assert report.loops == len(tub)
    assert [row[1] for row in collect.rows] == [record.index for record in tub.records()]
    assert [row[0] for row in collect.rows] == list(range(len(tub)))
    assert "finished after 1000 frames" in report.reason


def test_replay_end_raises_without_callback():
    camera = create_camera(replay_config(TRACK_TUB))
    for _ in range(len(camera.records)):
        camera.run()

    with pytest.raises(ReplayFinished, match="all 1000 records"):
        camera.run()


def test_replay_loop_starts_again():
    tub = open_tub(TRACK_TUB)
    first = next(iter(tub.records()))
    camera = create_camera(replay_config(TRACK_TUB, camera__replay_loop=True))
    for _ in range(len(camera.records)):
        camera.run()

    _, _, number, _, _, index = camera.run()

    assert index == first.index
    assert number == len(tub)


def test_replay_resizes():
    camera = create_camera(replay_config(TRACK_TUB, camera__width=80, camera__height=60))

    image, _, _, _, _, _ = camera.run()

    assert image.shape == (60, 80, 3)
    assert image.dtype == np.uint8


def test_replay_skips_image_lost_after_open(tmp_path):
    tub_copy = tmp_path / "tub"
    shutil.copytree(TRACK_TUB, tub_copy)
    camera = ReplayCamera(tub_copy)
    records = camera.records
    (tub_copy / "images" / records[1].values["cam/image_array"]).unlink()

    indexes = [camera.run()[5] for _ in range(2)]

    assert indexes == [records[0].index, records[2].index]
    assert camera.skipped == 1


def test_replay_path_relative_to_car(tmp_path):
    shutil.copytree(TRACK_TUB, tmp_path / "data" / "track")
    cfg = replay_config("data/track")
    cfg.car_path = tmp_path

    camera = create_camera(cfg)

    assert len(camera.records) == 1000


def test_replay_without_tub_is_config_error():
    with pytest.raises(ConfigError, match="camera.replay_tub"):
        create_camera(default_config(camera__type="replay"))


# -- conversion -----------------------------------------------------------------


def test_to_rgb_from_bgrx():
    frame = np.zeros((4, 6, 4), dtype=np.uint8)
    frame[..., 2] = 200  # red in BGRX memory order
    frame[..., 3] = 255

    image = cameras.to_rgb(frame, "bgrx", 6, 4)

    assert image.shape == (4, 6, 3)
    assert (image == [200, 0, 0]).all()
    assert image.flags["C_CONTIGUOUS"]
