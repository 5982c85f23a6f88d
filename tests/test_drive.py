"""`autodrive drive` end to end: the simulator, signals, replay of a real tub, and `tub compare`."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import websocket
from click.testing import CliRunner

from autodrive import channels as ch
from autodrive.assemble import build_vehicle, find_part
from autodrive.cli import cli
from autodrive.compare import compare_tub
from autodrive.config import load_config
from autodrive.parts.pilot import load_pilot
from autodrive.tub import TubWriter, open_tub
from autodrive.tub.record import UNUSED_INPUT
from autodrive.web.protocol import MODES
from test_pilot import make_linear_model

REPO = Path(__file__).resolve().parents[1]
SHARED_TUB = REPO.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"
LOCAL_ONLY = ["--set", "web.host=127.0.0.1", "--set", "web.port=0"]
TOKEN = "drive-test-token"
LOCAL_WEB = ["web.host=127.0.0.1", "web.port=0", f"web.token={TOKEN}"]
WAIT_S = 30.0  # upper bound for things that happen asynchronously; never a speed requirement


@pytest.fixture(scope="module")
def car(tmp_path_factory):
    folder = tmp_path_factory.mktemp("car")
    make_linear_model(folder / "models", "tiny")
    return folder


def start_drive(car, *arguments):
    log_path = car / f"drive-{time.monotonic_ns()}.log"
    log_file = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "autodrive", "drive", "--car", str(car), *LOCAL_ONLY, *arguments],
        cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return process, log_path, log_file


def wait_for_line(process, log_path, text, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        output = log_path.read_text()
        if text in output:
            return output
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"{text!r} never appeared; output:\n{log_path.read_text()}")


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_at_neutral(car, number):
    process, log_path, log_file = start_drive(car, "--model", "models/tiny.tflite", "--set", "drive.mode=local")
    try:
        wait_for_line(process, log_path, "drive loop started")
        wait_for_line(process, log_path, "Drive the car at http://127.0.0.1:")
        process.send_signal(number)
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        log_file.close()
    output = log_path.read_text()

    assert status == 0, output
    assert f"received {signal.Signals(number).name}" in output
    assert "actuator drivetrain set to neutral" in output
    assert output.index("actuator drivetrain set to neutral") < output.index("web controller stopped")
    assert "Traceback" not in output


def test_mismatched_model_rejected_at_start(car):
    process, log_path, log_file = start_drive(car, "--model", "models/tiny.tflite",
                                              "--set", "camera.width=320", "--set", "camera.height=240")
    status = process.wait(timeout=120)
    log_file.close()
    output = log_path.read_text()

    assert status == 1
    assert "expects 160x120 px camera frames" in output
    assert "320x240" in output
    assert "drive loop started" not in output
    assert "Traceback" not in output


def test_pilot_drives_simulator(car):
    cfg = load_config(car, ["drive.mode=local", "drive.max_loops=30", "pilot.throttle_scale=0.5",
                            "drive.max_throttle=0.8"])
    vehicle = build_vehicle(cfg, model="models/tiny.tflite", web=False, record=False)
    report = vehicle.start(rate_hz=None, max_loops=cfg.drive.max_loops)
    pilot = find_part(vehicle, "pilot")
    drivetrain = find_part(vehicle, "drivetrain")
    memory = vehicle.mem

    assert report.clean
    assert pilot is not None
    assert memory[ch.USER_MODE] == "local"
    expected_throttle = min(0.8, max(-0.8, memory[ch.PILOT_THROTTLE] * 0.5))
    assert memory[ch.SAFE_THROTTLE] == pytest.approx(expected_throttle)
    assert memory[ch.SAFE_ANGLE] == pytest.approx(min(1.0, max(-1.0, memory[ch.PILOT_ANGLE])))
    assert memory[ch.PILOT_INFERENCE_MS] > 0
    assert memory[ch.PILOT_FRAME_AGE_MS] >= 0
    assert drivetrain.throttle == 0.0


@pytest.fixture(scope="module")
def replayed(car, tmp_path_factory):
    """Replay a copy of the real tub through the tiny pilot, recording its outputs."""
    tub_copy = tmp_path_factory.mktemp("tubs") / "track"
    shutil.copytree(SHARED_TUB, tub_copy)
    cfg = load_config(car, ["camera.type=replay", f"camera.replay_tub={tub_copy}", "recording.tub=data/replay",
                            "drive.loop_hz=200"])
    vehicle = build_vehicle(cfg, model="models/tiny.tflite")
    report = vehicle.start(rate_hz=cfg.drive.loop_hz)
    return report, tub_copy, car / "data" / "replay"


def test_replay_records_pilot_beside_person(replayed):
    report, source, recorded = replayed
    source_tub = open_tub(source)
    tub = open_tub(recorded)
    records = list(tub.records())

    assert report.clean
    assert "replay" in report.reason
    assert len(records) == len(source_tub)
    assert ch.PILOT_ANGLE in tub.inputs
    first_source = next(iter(source_tub.records()))
    assert records[0].values[ch.USER_ANGLE] == pytest.approx(first_source.values[ch.USER_ANGLE])
    assert records[0].values[ch.USER_MODE] == "user"


def test_compare_matches_direct_run(replayed, car):
    _, source, recorded = replayed
    pilot = load_pilot(car / "models" / "tiny.tflite")
    source_tub = open_tub(source)
    angle_errors = []
    for record in source_tub.records():
        angle, _ = pilot.run(source_tub.load_image(record))
        angle_errors.append(angle - record.values[ch.USER_ANGLE])

    results = {result.name: result for result in compare_tub(recorded)}

    assert results["angle"].count == len(angle_errors)
    assert results["angle"].mae == pytest.approx(np.mean(np.abs(angle_errors)), abs=1e-4)
    assert results["angle"].rmse == pytest.approx(np.sqrt(np.mean(np.square(angle_errors))), abs=1e-4)
    assert results["throttle"].count == len(angle_errors)


def test_compare_command_output(replayed):
    _, _, recorded = replayed
    result = CliRunner().invoke(cli, ["tub", "compare", str(recorded), "--json"])
    figures = json.loads(result.output)

    assert result.exit_code == 0, result.output
    assert set(figures) == {"angle", "throttle"}
    assert figures["angle"]["rmse"] >= figures["angle"]["mae"]


def test_compare_rejects_tub_without_pilot(tmp_path):
    tub_copy = tmp_path / "track"
    shutil.copytree(SHARED_TUB, tub_copy)
    with pytest.raises(ValueError, match="no pilot/angle or pilot/throttle channel"):
        compare_tub(tub_copy)


def test_replay_into_same_tub_rejected(car, tmp_path):
    cfg = load_config(car, ["camera.type=replay", f"camera.replay_tub={tmp_path}", f"recording.tub={tmp_path}"])
    shutil.copytree(SHARED_TUB, tmp_path, dirs_exist_ok=True)
    with pytest.raises(ValueError, match="must not write into the tub it plays"):
        build_vehicle(cfg, model="models/tiny.tflite")


class RunningCar:
    """A built Vehicle running on a thread, with a websocket client connected to its web controller."""

    def __init__(self, vehicle):
        self.vehicle = vehicle
        self.web = find_part(vehicle, "web")
        self.runner = threading.Thread(target=vehicle.start, kwargs={"rate_hz": 50}, daemon=True)
        self.runner.start()
        assert self.web.wait_ready()
        self.socket = websocket.create_connection(f"ws://127.0.0.1:{self.web.port}/ws", timeout=WAIT_S,
                                                  cookie=f"autodrive_token={TOKEN}", suppress_origin=True)
        self.seq = 0

    def receive(self, kind):
        """Return the next message of ``kind``, skipping the periodic state messages."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            if message["type"] == kind:
                return message
        raise AssertionError(f"no {kind} message within {WAIT_S} s")

    def control(self, **fields):
        self.seq += 1
        self.socket.send(json.dumps({"type": "control", "seq": self.seq, **fields}))
        return self.seq

    def status(self):
        url = f"http://127.0.0.1:{self.web.port}/status?token={TOKEN}"
        with urllib.request.urlopen(url, timeout=WAIT_S) as response:
            return json.loads(response.read())

    def close(self):
        self.socket.close()
        self.vehicle.stop()
        self.runner.join(WAIT_S)


def test_simulator_publishes_telemetry(tmp_path):
    cfg = load_config(tmp_path, ["drive.max_loops=3"])
    vehicle = build_vehicle(cfg, web=False, record=False)
    report = vehicle.start(rate_hz=None, max_loops=cfg.drive.max_loops)
    memory = vehicle.mem

    assert report.clean
    assert isinstance(memory[ch.SIM_SPEED], float)
    assert isinstance(memory[ch.SIM_CTE], float)
    assert isinstance(memory[ch.SIM_LAP], int)
    assert isinstance(memory[ch.SIM_OFF_TRACK], bool)


def test_simulator_speed_reaches_page(tmp_path):
    cfg = load_config(tmp_path, LOCAL_WEB)
    car = RunningCar(build_vehicle(cfg, record=False))
    try:
        car.receive("hello")
        deadline = time.monotonic() + WAIT_S
        status = car.status()
        while not (isinstance(status["sim_speed"], float) and status["sim_speed"] > 0):
            assert time.monotonic() < deadline, f"sim_speed never above 0 on /status: {status}"
            car.control(angle=0.0, throttle=0.5)
            car.receive("ack")  # receiving also replies to the server's websocket pings
            time.sleep(0.05)
            status = car.status()
        speed_mps = car.vehicle.mem[ch.SIM_SPEED]
    finally:
        car.close()

    assert speed_mps > 0


def test_page_without_model_offers_user_mode_only(tmp_path):
    cfg = load_config(tmp_path, LOCAL_WEB)
    car = RunningCar(build_vehicle(cfg, record=False))
    try:
        hello = car.receive("hello")
        seq = car.control(mode="local")
        error = car.receive("error")
        loops = car.vehicle.loops
        deadline = time.monotonic() + WAIT_S
        while car.vehicle.loops < loops + 3:
            assert time.monotonic() < deadline, "the drive loop stopped"
            time.sleep(0.01)
        status = car.status()
        mode_in_force = car.vehicle.mem[ch.USER_MODE]
    finally:
        car.close()

    assert hello["modes"] == ["user"]
    assert error["seq"] == seq
    assert "--model" in error["error"]
    assert status["mode"] == "user"
    assert mode_in_force == "user"


def test_page_with_model_offers_pilot_modes(car):
    cfg = load_config(car, LOCAL_WEB)
    vehicle = build_vehicle(cfg, model="models/tiny.tflite", record=False)
    try:
        modes = find_part(vehicle, "web").state.modes
    finally:
        vehicle.shutdown()

    assert modes == MODES


def test_drive_leaves_tub_manifest_until_recording(car, tmp_path):
    tub_path = tmp_path / "data"
    with TubWriter(tub_path, ["user/angle"], ["float"]) as writer:
        writer.write({"user/angle": 0.1}, block=True)
    manifest_before = (tub_path / "manifest.json").read_text()
    cfg = load_config(car, [f"recording.tub={tub_path}", "drive.max_loops=5"])

    vehicle = build_vehicle(cfg, model="models/tiny.tflite", web=False)
    report = vehicle.start(rate_hz=None, max_loops=cfg.drive.max_loops)

    assert report.clean
    assert vehicle.mem[ch.RECORD_COUNT] == 0
    assert (tub_path / "manifest.json").read_text() == manifest_before
    assert UNUSED_INPUT not in open_tub(tub_path).problems

    vehicle = build_vehicle(cfg, model="models/tiny.tflite", web=False)
    vehicle.mem[ch.RECORDING] = True  # what the page's Record button sets
    vehicle.start(rate_hz=None, max_loops=cfg.drive.max_loops)
    tub = open_tub(tub_path)

    assert len(tub) > 1
    assert ch.PILOT_ANGLE in tub.inputs
    assert ch.PILOT_THROTTLE in tub.inputs
    assert any(isinstance(record.values.get(ch.PILOT_ANGLE), float) for record in tub.records())
