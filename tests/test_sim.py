"""Tests of the built-in simulator: geometry, physics, rendering, parts and the expert driver."""

import math

import numpy as np
import pytest

from autodrive import channels
from autodrive.config import default_config, load_config
from autodrive.sim import BUILTIN_TRACKS, TrackError, create_sim, make_track
from autodrive.sim.expert import make_expert
from autodrive.sim.physics import BicycleModel, CarParams, CarState
from autodrive.sim.render import CameraParams, FloorMap, PinholeCamera, Renderer
from autodrive.sim.track import builtin_track
from autodrive.vehicle import Vehicle


def quiet_config(**overrides):
    """Return a config whose frames have no lighting, noise or blur variation."""
    values = {"sim__lighting_variation": 0.0, "sim__noise_std": 0.0, "sim__blur_max_px": 0}
    values.update(overrides)
    return default_config(**values)


# -- camera geometry -------------------------------------------------------------


def pinhole_pixel(point_car, params: CameraParams):
    """Project a car-frame point with the textbook pinhole formulas, independently of the renderer."""
    x, y, z = (np.array(point_car) - (params.forward_m, 0.0, params.height_m)).tolist()
    pitch = math.radians(params.pitch_deg)
    depth = x * math.cos(pitch) - z * math.sin(pitch)
    down = -x * math.sin(pitch) - z * math.cos(pitch)
    focal = (params.width_px / 2) / math.tan(math.radians(params.fov_deg) / 2)
    return params.width_px / 2 + focal * (-y) / depth, params.height_px / 2 + focal * down / depth


@pytest.mark.parametrize("ground_point", [(1.0, 0.0), (0.8, 0.3), (1.5, -0.4)])
def test_ground_point_lands_on_pinhole_pixel(ground_point):
    params = CameraParams(width_px=160, height_px=120, height_m=0.15, pitch_deg=20.0, fov_deg=100.0, forward_m=0.2)
    m_per_px = 0.005
    image = np.zeros((800, 800, 3), np.uint8)
    # The car is at the world origin heading along x, so world and car frames match.
    min_x, max_y = -1.0, 2.0
    column = int((ground_point[0] - min_x) / m_per_px)
    row = int((max_y - ground_point[1]) / m_per_px)
    image[row - 2:row + 3, column - 2:column + 3] = 255
    floor = FloorMap(image, min_x, max_y, m_per_px, floor_rgb=(0, 0, 0))
    renderer = Renderer(PinholeCamera(params), floor, np.zeros((10, 64, 3), np.uint8), reflections=False)

    frame = renderer.render(0.0, 0.0, 0.0).astype(float).sum(axis=2)
    rows, columns = np.nonzero(frame > 0.5 * frame.max())
    weights = frame[rows, columns]
    seen = (np.average(columns + 0.5, weights=weights), np.average(rows + 0.5, weights=weights))
    centre = ((column + 0.5) * m_per_px + min_x, max_y - (row + 0.5) * m_per_px)
    expected = pinhole_pixel((centre[0], centre[1], 0.0), params)

    assert frame.max() > 0, "the marked floor point is not in the frame"
    assert seen[0] == pytest.approx(expected[0], abs=0.75)
    assert seen[1] == pytest.approx(expected[1], abs=0.75)


def test_camera_project_matches_pinhole():
    params = CameraParams(pitch_deg=12.0, fov_deg=90.0)
    camera = PinholeCamera(params)
    point = (2.0, -0.5, 0.0)
    projected = camera.project(np.array([point]))[0]
    expected = pinhole_pixel(point, params)
    assert projected[0] == pytest.approx(expected[0])
    assert projected[1] == pytest.approx(expected[1])


def test_horizon_row_follows_pitch():
    world = create_sim(quiet_config(sim__camera_pitch_deg=0.0))
    floor_rows = world.renderer.floor_pixel_count // world.camera.width_px
    # A level camera shows the floor in exactly the lower half of the rows.
    assert floor_rows == world.camera.height_px // 2


# -- physics ---------------------------------------------------------------------


@pytest.mark.parametrize("angle", [0.5, -0.3, 1.0])
def test_constant_steering_drives_predicted_circle(angle):
    params = CarParams(wheelbase_m=0.25, max_steer_deg=25.0, top_speed_mps=2.0, speed_lag_s=0.3)
    model = BicycleModel(params)
    state = CarState()
    positions = []
    for step in range(400):
        state = model.step(state, angle, 0.5, 0.05)
        if step >= 20:
            positions.append((state.x_m, state.y_m))

    points = np.array(positions)
    # Least-squares circle: x² + y² + D x + E y + F = 0.
    design = np.column_stack([points, np.ones(len(points))])
    solution, *_ = np.linalg.lstsq(design, -(points ** 2).sum(axis=1), rcond=None)
    centre = -solution[:2] / 2
    radius = math.sqrt((centre ** 2).sum() - solution[2])
    expected = params.wheelbase_m / math.tan(math.radians(abs(angle) * params.max_steer_deg))

    assert radius == pytest.approx(expected, rel=1e-6)
    # Negative angles steer left, so the centre is on the car's left (positive y at the start).
    assert np.sign(centre[1]) == -np.sign(angle)


def test_speed_follows_first_order_lag():
    params = CarParams(top_speed_mps=3.0, speed_lag_s=0.5)
    model = BicycleModel(params)
    state = model.step(CarState(), 0.0, 0.6, 0.5)
    assert state.speed_mps == pytest.approx(1.8 * (1 - math.exp(-1.0)))
    assert state.y_m == pytest.approx(0.0)


def test_steering_slews_at_rate():
    params = CarParams(max_steer_deg=30.0, steer_rate_deg_s=100.0)
    model = BicycleModel(params)
    state = model.step(CarState(), -1.0, 0.0, 0.1)
    assert math.degrees(state.wheel_angle_rad) == pytest.approx(10.0)


# -- world and parts ---------------------------------------------------------------


def test_same_seed_same_frames():
    runs = []
    for _ in range(2):
        world = create_sim(default_config(sim__seed=3, sim__blur_max_px=2))
        frames = []
        for _ in range(30):
            frames.append(world.render())
            world.step(0.2, 0.5)
        runs.append(np.stack(frames))
    assert runs[0].dtype == np.uint8
    assert runs[0].shape == (30, 120, 160, 3)
    assert np.array_equal(runs[0], runs[1])


def test_other_seed_other_frames():
    frames = [create_sim(default_config(sim__seed=seed)).render() for seed in (1, 2)]
    assert not np.array_equal(frames[0], frames[1])


def test_frame_size_from_camera_config():
    world = create_sim(quiet_config(camera__width=320, camera__height=240))
    frame = world.render()
    assert frame.shape == (240, 320, 3)
    assert frame.dtype == np.uint8


def test_frame_shows_lines_ahead():
    world = create_sim(quiet_config())
    frame = world.render()
    red, green, blue = (frame[..., index].astype(int) for index in range(3))
    yellow = (red > 150) & (green > 140) & (blue < 110)
    white = (red > 180) & (green > 180) & (blue > 170)
    assert yellow.sum() > 20
    assert white.sum() > 20


def test_leaving_lane_sets_off_track():
    world = create_sim(quiet_config())
    drivetrain = world.drivetrain_part()
    outputs = drivetrain.run(0.0, 0.0)
    assert outputs[3] is False

    for _ in range(200):
        cte, speed, laps, off_track = drivetrain.run(1.0, 0.5)
        if off_track:
            break
    assert off_track is True
    assert abs(cte) + world.car.width_m / 2 > world.track.lane_width_m / 2
    assert speed > 0


def test_parts_drive_in_vehicle():
    world = create_sim(quiet_config())
    vehicle = Vehicle(timing=False)
    vehicle.add(world.camera_part(), outputs=[channels.CAMERA_IMAGE, channels.CAMERA_TIME, channels.CAMERA_FRAME])
    vehicle.add(ConstantCommands(0.0, 0.4), outputs=[channels.SAFE_ANGLE, channels.SAFE_THROTTLE])
    drivetrain = world.drivetrain_part()
    vehicle.add(drivetrain, inputs=[channels.SAFE_ANGLE, channels.SAFE_THROTTLE],
                outputs=[channels.SIM_CTE, channels.SIM_SPEED, channels.SIM_LAP, channels.SIM_OFF_TRACK],
                actuator=True)

    for _ in range(20):
        vehicle.run_once()
    memory = vehicle.mem
    assert memory[channels.CAMERA_IMAGE].shape == (120, 160, 3)
    assert memory[channels.CAMERA_FRAME] == 19
    assert memory[channels.SIM_SPEED] > 0.5
    assert memory[channels.SIM_LAP] == 0
    assert memory[channels.SIM_OFF_TRACK] is False
    assert world.time_s == pytest.approx(20 * world.dt_s)

    vehicle.shutdown()
    assert world.state.speed_mps == 0.0


class ConstantCommands:
    def __init__(self, angle, throttle):
        self.commands = (angle, throttle)

    def run(self):
        return self.commands


def test_drivetrain_treats_nan_as_stop():
    world = create_sim(quiet_config())
    drivetrain = world.drivetrain_part()
    for _ in range(10):
        _, speed, _, _ = drivetrain.run(float("nan"), None)
    assert speed == 0.0


# -- expert driver ---------------------------------------------------------------


@pytest.mark.parametrize("track", BUILTIN_TRACKS)
def test_expert_laps_track_cleanly(track):
    cfg = default_config(sim__track=track)
    world = create_sim(cfg)
    expert = make_expert(world, cfg)
    off_track_steps = 0
    while world.telemetry.laps < 5 and world.time_s < 600:
        action = expert.drive(world.state, world.dt_s)
        off_track_steps += world.step(action.angle, action.throttle).off_track
    assert world.telemetry.laps == 5
    assert off_track_steps == 0
    assert expert.drifts > 0


def test_expert_recovery_not_recorded():
    cfg = default_config(sim__expert_recovery_interval_s=2.0)
    world = create_sim(cfg)
    expert = make_expert(world, cfg)
    skipped_offsets = []
    for _ in range(600):
        action = expert.drive(world.state, world.dt_s)
        if not action.record:
            skipped_offsets.append(expert.target_offset_m)
        world.step(action.angle, action.throttle)
    assert skipped_offsets
    assert all(offset != 0.0 for offset in skipped_offsets)


# -- tracks ------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_TRACKS)
def test_builtin_track_closes(name):
    track = builtin_track(name, 0.8)
    gaps = np.hypot(*np.diff(np.vstack([track.points, track.points[:1]]), axis=0).T)
    assert gaps.max() < 0.03
    assert track.locate(*track.point_at(1.0, 0.25)).cte_m == pytest.approx(0.25, abs=1e-6)


def test_track_file_loads(tmp_path):
    path = tmp_path / "square.yaml"
    path.write_text("- [0, 0]\n- [4, 0]\n- [4, 3]\n- [0, 3]\n")
    track = make_track("square.yaml", 0.6, base=tmp_path)
    assert track.name == "square"
    # A smooth curve through the corners is a little longer than the square's 14 m.
    assert 13.0 < track.length_m < 16.0

    (tmp_path / "myconfig.yaml").write_text("sim:\n  track: square.yaml\n")
    world = create_sim(load_config(tmp_path))
    assert world.track.name == "square"
    assert world.render().shape == (120, 160, 3)


@pytest.mark.parametrize("text, words", [
    ("[1, 2", "not valid YAML"),
    ("points: 3", "list of at least 3"),
    ("- [0, 0]\n- [1, x]\n- [2, 2]\n", "point 2"),
    ("- [0, 0]\n- [0, 0]\n- [2, 2]\n", "same place"),
])
def test_bad_track_file_rejected(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TrackError) as raised:
        make_track(str(path), 0.8)
    assert words in str(raised.value)
    assert str(path) in str(raised.value)


def test_unknown_track_rejected(tmp_path):
    with pytest.raises(TrackError, match="not a built-in track"):
        make_track("ovall", 0.8)
    with pytest.raises(TrackError, match="not found"):
        make_track("missing.yaml", 0.8, base=tmp_path)
