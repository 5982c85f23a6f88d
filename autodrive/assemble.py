"""Build a car's Vehicle from its config: the only module that decides which parts a car has.

The parts run in this order every loop:

1. camera (``camera.type``: picamera2, OpenCV, a replayed tub or the simulator);
2. web controller, unless disabled (the person's commands, mode, emergency stop);
3. pilot, when a model is given (``pilot.model`` or ``--model``);
4. drive mode (``user``, ``local_angle``, ``local``): picks the command;
5. safety stage: clamps, limits and stops; the only source of ``safe/*``;
6. drivetrain (``drivetrain.type``), marked as the actuator so it is set to
   neutral first at every shutdown;
7. recorder, writing the frame with the commands and the mode in force.

With ``camera.type: replay`` the car runs headless over a recorded tub: the
recorded user/angle and user/throttle are fed back as the person's commands,
every frame is recorded with the pilot's outputs beside them (for
``autodrive tub compare``), and the loop stops at the end of the tub.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from autodrive import channels as ch
from autodrive.errors import ConfigError
from autodrive.parts.safety import DriveMode, SafetyStage
from autodrive.vehicle import Vehicle

log = logging.getLogger(__name__)

CAMERA_OUTPUTS = (ch.CAMERA_IMAGE, ch.CAMERA_TIME, ch.CAMERA_FRAME)
DRIVE_MODE_INPUTS = (ch.USER_ANGLE, ch.USER_THROTTLE, ch.USER_MODE, ch.PILOT_ANGLE, ch.PILOT_THROTTLE)
DRIVE_MODE_OUTPUTS = (ch.DRIVE_ANGLE, ch.DRIVE_THROTTLE, ch.USER_MODE)
SAFETY_INPUTS = (ch.DRIVE_ANGLE, ch.DRIVE_THROTTLE, ch.USER_MODE, ch.USER_ESTOP, ch.USER_MAX_THROTTLE,
                 ch.USER_TIME, ch.PILOT_TIME)
SAFETY_OUTPUTS = (ch.SAFE_ANGLE, ch.SAFE_THROTTLE)
PILOT_INPUTS = (ch.CAMERA_IMAGE, ch.CAMERA_TIME)
PILOT_OUTPUTS = (ch.PILOT_ANGLE, ch.PILOT_THROTTLE, ch.PILOT_INFERENCE_MS, ch.PILOT_TIME, ch.PILOT_FRAME_AGE_MS)

# Channels every recording holds; a car with a pilot adds PILOT_RECORDED.
RECORDED = (ch.CAMERA_IMAGE, ch.USER_ANGLE, ch.USER_THROTTLE, ch.USER_MODE)
PILOT_RECORDED = (ch.PILOT_ANGLE, ch.PILOT_THROTTLE)
RECORDED_TYPES = {ch.CAMERA_IMAGE: "image_array", ch.USER_ANGLE: "float", ch.USER_THROTTLE: "float",
                  ch.USER_MODE: "str", ch.PILOT_ANGLE: "float", ch.PILOT_THROTTLE: "float"}
MAX_REPLAY_QUEUE = 100_000


class ReplayLabels:
    """Part that feeds a replayed tub's recorded commands back as the person's, and keeps recording on."""

    def run(self, angle: Any, throttle: Any) -> tuple[Any, Any, bool]:
        return angle, throttle, True


def build_vehicle(
    cfg: Any,
    model: str | Path | None = None,
    web: bool = True,
    record: bool = True,
    vehicle: Vehicle | None = None,
) -> Vehicle:
    """Return a Vehicle with every part the config describes, ready for ``start()``.

    ``model`` overrides ``pilot.model``; a relative path is taken from the
    car folder. ``web=False`` leaves out the web controller, for headless
    runs: then only a pilot in ``local`` mode moves the car. ``record=False``
    leaves out the recorder. A part that cannot start (no camera, a model
    that does not fit the camera, a port in use) raises before anything
    moves, and the parts built so far are shut down.
    """
    vehicle = vehicle or Vehicle(timing=cfg.drive.timing_report, stall_timeout_s=cfg.drive.stall_timeout_s)
    replay = cfg.camera.type == "replay"
    try:
        _add_parts(vehicle, cfg, model, web and not replay, record, replay)
    except BaseException:
        vehicle.shutdown()
        raise
    names = ", ".join(entry.name for entry in vehicle.parts)
    log.info("car assembled: %s", names)
    return vehicle


def _add_parts(vehicle: Vehicle, cfg: Any, model: str | Path | None, web: bool, record: bool, replay: bool) -> None:
    from autodrive.parts.actuator import add_drivetrain
    from autodrive.parts.cameras import create_camera

    camera = create_camera(cfg, on_end=vehicle.stop) if replay else create_camera(cfg)
    vehicle.add(camera, outputs=getattr(camera, "outputs", CAMERA_OUTPUTS), threaded=getattr(camera, "threaded", False),
                name="camera")
    if replay:
        if record:
            _check_replay_target(cfg)
        vehicle.add(ReplayLabels(), inputs=[ch.REPLAY_ANGLE, ch.REPLAY_THROTTLE],
                    outputs=[ch.USER_ANGLE, ch.USER_THROTTLE, ch.RECORDING], name="replay-labels")

    model_path = model if model is not None else cfg.pilot.model
    if web:
        from autodrive.parts.web import WebController

        # The page offers the pilot modes only when the drive-mode part will accept them.
        controller = WebController.from_config(cfg, has_pilot=model_path is not None)
        vehicle.add(controller, inputs=WebController.INPUTS, outputs=WebController.OUTPUTS, threaded=True, name="web")

    pilot_part = None
    if model_path is not None:
        pilot_part = _create_pilot_part(cfg, model_path)
        vehicle.add(pilot_part, inputs=PILOT_INPUTS, outputs=PILOT_OUTPUTS, threaded=cfg.pilot.threaded, name="pilot")

    vehicle.add(DriveMode(cfg.drive.mode, has_pilot=pilot_part is not None, throttle_scale=cfg.pilot.throttle_scale),
                inputs=DRIVE_MODE_INPUTS, outputs=DRIVE_MODE_OUTPUTS, name="drive-mode")
    vehicle.add(SafetyStage(max_throttle=cfg.drive.max_throttle, user_timeout_s=cfg.web.watchdog_s,
                            pilot_timeout_s=cfg.pilot.timeout_s),
                inputs=SAFETY_INPUTS, outputs=SAFETY_OUTPUTS, name="safety")

    add_drivetrain(vehicle, _create_drivetrain(cfg, replay))

    if record:
        channels = RECORDED + (PILOT_RECORDED if pilot_part is not None else ())
        _add_recorder(vehicle, cfg, channels, len(camera.records) if replay else None)


def _create_pilot_part(cfg: Any, model_path: str | Path) -> Any:
    from autodrive.parts.pilot import PilotPart, load_pilot

    path = cfg.car_file(model_path)
    pilot = load_pilot(path, cfg)
    return PilotPart(pilot, loader=lambda new_path: load_pilot(new_path, cfg),
                     reload_on_change=cfg.pilot.reload_on_change)


def _create_drivetrain(cfg: Any, replay: bool) -> Any:
    from autodrive.parts.actuator import NullDrivetrain, create_drivetrain

    if replay and cfg.drivetrain.type == "auto":
        log.info("camera.type replay: driving no motors (set drivetrain.type to drive them anyway)")
        return NullDrivetrain()
    return create_drivetrain(cfg)


def _add_recorder(vehicle: Vehicle, cfg: Any, channels: tuple[str, ...], replay_records: int | None) -> None:
    from autodrive.parts.recorder import Recorder

    section = cfg.recording
    queue_size = section.queue_size
    if replay_records is not None:
        # A replay must record every frame, and its loop may outrun the disk:
        # let the whole replay wait in the queue rather than drop records.
        queue_size = min(MAX_REPLAY_QUEUE, max(queue_size, replay_records))
    recorder = Recorder(
        cfg.car_file(section.tub),
        channels,
        [RECORDED_TYPES[name] for name in channels],
        auto_on_throttle=section.auto_on_throttle,
        throttle_threshold=section.throttle_threshold,
        jpeg_quality=section.jpeg_quality,
        fsync_interval_s=section.fsync_interval_s,
        queue_size=queue_size,
    )
    vehicle.add(recorder, inputs=recorder.vehicle_inputs, outputs=[ch.RECORD_COUNT], name="recorder")


def _check_replay_target(cfg: Any) -> None:
    if cfg.camera.replay_tub is None:
        return
    source = cfg.car_file(cfg.camera.replay_tub).resolve()
    target = cfg.car_file(cfg.recording.tub).resolve()
    if source == target:
        raise ConfigError(
            f"recording.tub and camera.replay_tub are both {source}: a replay must not write into the tub it "
            "plays; set recording.tub to another folder, for example --set recording.tub=data/replay"
        )


def find_part(vehicle: Vehicle, name: str) -> Any:
    """Return the part added under ``name`` ("camera", "web", "pilot", "safety", ...), or None."""
    for entry in vehicle.parts:
        if entry.name == name:
            return entry.part
    return None
