"""The recorder part: when it records, what it writes, and how it builds from the config."""

from __future__ import annotations

import numpy as np

from autodrive import channels
from autodrive.config import load_config
from autodrive.parts.recorder import Recorder
from autodrive.tub import open_tub
from autodrive.vehicle import Vehicle

IMAGE = np.zeros((120, 160, 3), dtype=np.uint8)


def run(recorder: Recorder, recording: bool, throttle: float, mode: str = "user", image=IMAGE) -> int:
    return recorder.run(recording, throttle, mode, image, 0.1, throttle, mode)


def test_recorder_records_only_when_on(tmp_path):
    recorder = Recorder(tmp_path / "data")
    for recording in (False, True, True, False, True):
        run(recorder, recording, 0.5)
    recorder.shutdown()

    assert len(open_tub(tmp_path / "data")) == 3
    assert recorder.count == 3


def test_recorder_auto_on_throttle(tmp_path):
    recorder = Recorder(tmp_path / "data", auto_on_throttle=True, throttle_threshold=0.2)
    run(recorder, False, 0.3)
    run(recorder, False, 0.1)
    run(recorder, False, 0.3, mode="local")
    run(recorder, False, 0.25)
    recorder.shutdown()

    throttles = [record.values["user/throttle"] for record in open_tub(tmp_path / "data").records()]

    assert throttles == [0.3, 0.25]


def test_recorder_skips_missing_image(tmp_path):
    recorder = Recorder(tmp_path / "data")
    run(recorder, True, 0.5, image=None)
    run(recorder, True, 0.5)
    recorder.shutdown()

    assert len(open_tub(tmp_path / "data")) == 1
    assert recorder.skipped_without_image == 1


def test_recorder_from_config(tmp_path):
    cfg = load_config(tmp_path, ["recording.tub=runs/today", "recording.auto_on_throttle=true",
                                 "recording.throttle_threshold=0.4", "recording.jpeg_quality=50"])

    recorder = Recorder.from_config(cfg, inputs=["cam/image_array", "user/angle", "user/throttle",
                                                 "user/mode", "pilot/angle"],
                                    types=["image_array", "float", "float", "str", "float"])
    recorder.shutdown()

    assert recorder.writer.path == tmp_path.resolve() / "runs" / "today"
    assert recorder.auto_on_throttle is True
    assert recorder.throttle_threshold == 0.4
    assert recorder.writer.jpeg_quality == 50
    assert open_tub(tmp_path / "runs" / "today").inputs[-1] == "pilot/angle"


def test_recorder_in_vehicle(tmp_path):
    recorder = Recorder.from_config(load_config(tmp_path))
    vehicle = Vehicle()
    vehicle.mem.put([channels.CAMERA_IMAGE, channels.USER_ANGLE, channels.USER_THROTTLE,
                     channels.USER_MODE, channels.RECORDING], (IMAGE, -0.5, 0.4, "user", True))
    vehicle.add(recorder, inputs=recorder.vehicle_inputs, outputs=[channels.RECORD_COUNT])

    report = vehicle.start(rate_hz=None, max_loops=25)
    tub = open_tub(tmp_path / "data")
    record = next(tub.records())

    assert report.clean
    assert len(tub) == 25
    assert vehicle.mem[channels.RECORD_COUNT] <= 25
    assert record.values == {"cam/image_array": "0_cam_image_array_.jpg", "user/angle": -0.5,
                             "user/throttle": 0.4, "user/mode": "user"}


def test_recorder_counts_drops(tmp_path, caplog):
    recorder = Recorder(tmp_path / "data", queue_size=2)
    # Holding the writer's commit lock stalls its workers, as a slow card would.
    with recorder.writer._commit_lock:
        for _ in range(12):
            run(recorder, True, 0.5)
    recorder.shutdown()

    assert recorder.writer.dropped >= 12 - 2 - 2
    assert recorder.count + recorder.writer.dropped == 12
    assert len(open_tub(tmp_path / "data")) == recorder.count
    assert any("fell behind" in entry.getMessage() for entry in caplog.records)
