"""`autodrive drive` end to end: the simulator, signals, replay of a real tub, and `tub compare`."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from autodrive import channels as ch
from autodrive.assemble import build_vehicle, find_part
from autodrive.cli import cli
from autodrive.compare import compare_tub
from autodrive.config import load_config
from autodrive.parts.pilot import load_pilot
from autodrive.tub import open_tub
from test_pilot import make_linear_model

REPO = Path(__file__).resolve().parents[1]
SHARED_TUB = REPO.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"
LOCAL_ONLY = ["--set", "web.host=127.0.0.1", "--set", "web.port=0"]


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
