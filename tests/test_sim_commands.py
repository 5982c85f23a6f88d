"""Tests of `autodrive sim record` and `autodrive sim evaluate`, with real tubs and videos on disk."""

import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from autodrive.cli import cli
from autodrive.config import default_config
from autodrive.errors import AutodriveError, ConfigError
from autodrive.sim import create_sim
from autodrive.sim.evaluate import EvaluationError, evaluate
from autodrive.sim.expert import ExpertPilot, make_expert
from autodrive.tub import open_tub
from autodrive.tub.tools import summarize


def run_cli(*args):
    """Run the autodrive command line in this process; errors propagate as exceptions."""
    return cli.main(args=list(args), prog_name="autodrive", standalone_mode=False)


def test_record_writes_tub(tmp_path, capsys):
    run_cli("sim", "record", "--car", str(tmp_path), "--minutes", "0.25", "--set", "sim.track=bends")

    tub = open_tub(tmp_path / "data")
    records = list(tub.records())
    # 15 s at 20 Hz is 300 steps; drifts off the centre line are left out.
    assert 150 <= len(records) <= 300
    assert tub.format == "v2"
    assert {"cam/image_array", "user/angle", "user/throttle", "user/mode"} <= set(tub.inputs)

    image = tub.load_image(records[-1])
    assert image.shape == (120, 160, 3)
    assert image.dtype == np.uint8
    angles = [record.values["user/angle"] for record in records]
    assert all(-1.0 <= angle <= 1.0 for angle in angles)
    assert max(angles) - min(angles) > 0.2
    assert all(record.values["user/mode"] == "user" for record in records)
    assert "recorded" in capsys.readouterr().out


def test_record_stamps_simulated_time(tmp_path):
    run_cli("sim", "record", "--car", str(tmp_path), "--minutes", "0.1", "--set", "drive.loop_hz=10")

    tub = open_tub(tmp_path / "data")
    times_ms = [record.timestamp_ms for record in tub.records()]
    steps_ms = [later - earlier for earlier, later in zip(times_ms, times_ms[1:])]
    summary = summarize(tub)
    info = CliRunner().invoke(cli, ["tub", "info", str(tmp_path / "data")], catch_exceptions=False)

    # 6 simulated seconds at 10 Hz: records are 100 ms apart, or a multiple where a drift was left out.
    assert len(steps_ms) > 30
    assert all(step > 0 and step % 100 == 0 for step in steps_ms)
    assert times_ms[-1] - times_ms[0] < 6000
    assert summary.frame_rate_hz == pytest.approx(10.0)
    assert summary.timestamp_note is None
    assert 3.0 < summary.duration_s < 6.0
    assert "frame rate 10.0 Hz" in info.output


def test_record_rejects_bad_track(tmp_path):
    (tmp_path / "track.yaml").write_text("- [0, 0]\n- [1, 1]\n")
    with pytest.raises(ConfigError, match="at least 3"):
        run_cli("sim", "record", "--car", str(tmp_path), "--minutes", "0.1", "--set", "sim.track=track.yaml")
    assert not (tmp_path / "data").exists()


def test_evaluate_expert_pilot(tmp_path):
    cfg = default_config(sim__track="oval")
    world = create_sim(cfg)
    pilot = ExpertPilot(world, make_expert(world, cfg, noise=False))
    video = tmp_path / "run.mp4"
    laps_seen = []

    result = evaluate(world, pilot, laps=2, video_path=video, progress=lambda lap, _: laps_seen.append(lap))

    assert result.laps == 2
    assert laps_seen == [1, 2]
    assert result.autonomy == 1.0
    assert result.off_track_events == 0
    assert result.max_abs_cte_m < world.track.lane_width_m / 2
    assert result.mean_speed_mps > 0.5
    assert "laps completed:      2 of 2" in result.summary()

    capture = cv2.VideoCapture(str(video))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = capture.read()
    capture.release()
    assert ok
    assert frames == result.steps
    assert first.shape == (360, 480, 3)


class StandingPilot:
    def run(self, image):
        return 0.0, 0.0


def test_evaluate_stops_standing_pilot():
    world = create_sim(default_config())
    result = evaluate(world, StandingPilot(), laps=1, max_lap_time_s=5.0)
    assert result.laps == 0
    assert result.mean_speed_mps == 0.0
    assert "longer than 5 s" in result.stop_reason
    assert result.sim_time_s == pytest.approx(5.0, abs=2 * world.dt_s)


class CirclingPilot:
    def run(self, image):
        return 1.0, 0.6


def test_evaluate_counts_off_track_and_resets():
    world = create_sim(default_config())
    result = evaluate(world, CirclingPilot(), laps=1, max_lap_time_s=20.0, reset_after_s=1.0)
    assert result.off_track_events >= 1
    assert result.resets >= 1
    assert result.autonomy < 1.0


class BrokenPilot:
    def run(self, image):
        return "left"


def test_evaluate_rejects_bad_pilot_output():
    world = create_sim(default_config())
    with pytest.raises(EvaluationError, match="angle, throttle"):
        evaluate(world, BrokenPilot(), laps=1)


def test_evaluate_cli_missing_model(tmp_path):
    with pytest.raises(AutodriveError):
        run_cli("sim", "evaluate", "--car", str(tmp_path), "--model", "models/none.tflite", "--laps", "1")


@pytest.mark.parametrize("reset_after, expect_resets", [("1", True), ("0", False)])
def test_evaluate_cli_reset_option(tmp_path, monkeypatch, capsys, reset_after, expect_resets):
    import autodrive.parts.pilot as pilot_module

    model = tmp_path / "circling.tflite"
    model.write_bytes(b"not read: the loader is replaced")
    monkeypatch.setattr(pilot_module, "load_pilot", lambda path, cfg: CirclingPilot())

    run_cli("sim", "evaluate", "--car", str(tmp_path), "--model", str(model), "--laps", "1",
            "--max-lap-s", "15", "--reset-after-s", reset_after)
    output = capsys.readouterr().out

    match = re.search(r"\((\d+) resets to the centre line\)", output)
    assert match, output
    assert (int(match[1]) > 0) is expect_resets
