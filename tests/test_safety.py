"""The drive-mode part and the safety stage, alone and in a running Vehicle with injected faults."""

import logging
import math
import re

import pytest

from autodrive import channels as ch
from autodrive.parts.safety import DriveMode, SafetyStage
from autodrive.vehicle import Vehicle

LOOP_HZ = 20
# The fault part runs after the safety stage, so a fault acts on the next loop at the latest.
ONE_LOOP_S = 1.0 / LOOP_HZ + 1e-9


class FakeClock:
    """A clock that moves only when the vehicle sleeps to its next deadline."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeWeb:
    """Stands in for the web controller: the person's commands, with a link that can drop."""

    def __init__(self, clock, mode="user", angle=0.1, throttle=0.5):
        self.clock = clock
        self.mode = mode
        self.angle = angle
        self.throttle = throttle
        self.estop = False
        self.max_throttle = 1.0
        self.connected = True
        self.command_time = clock()

    def run(self):
        if self.connected:
            self.command_time = self.clock()
        return self.angle, self.throttle, self.mode, self.estop, self.max_throttle, self.command_time


class FakePilot:
    """Stands in for the pilot part: outputs that can turn NaN or stop updating."""

    def __init__(self, clock, angle=-0.2, throttle=0.4):
        self.clock = clock
        self.angle = angle
        self.throttle = throttle
        self.stalled = False
        self.output_time = clock()

    def run(self):
        if not self.stalled:
            self.output_time = self.clock()
        return self.angle, self.throttle, self.output_time


class RecordingDrivetrain:
    """The actuator part: keeps every command with the time it arrived."""

    def __init__(self, clock):
        self.clock = clock
        self.commands = []
        self.neutral_calls = 0

    def run(self, angle, throttle):
        self.commands.append((self.clock(), angle, throttle))

    def neutral(self):
        self.neutral_calls += 1
        self.commands.append((self.clock(), 0.0, 0.0))

    @property
    def throttle(self):
        return self.commands[-1][2]

    def first_stop_after(self, moment):
        for time_s, _, throttle in self.commands:
            if time_s >= moment and throttle == 0.0:
                return time_s
        return None


class Fault:
    """A part that runs a callback on a chosen loop, to inject a fault into a running vehicle."""

    def __init__(self, at_loop, action):
        self.loop = 0
        self.at_loop = at_loop
        self.action = action
        self.fired_at = None

    def run(self):
        self.loop += 1
        if self.loop == self.at_loop:
            self.fired_at = self.action()


def build_vehicle(mode="user", has_pilot=True, max_throttle=1.0, user_timeout_s=0.5, pilot_timeout_s=0.5):
    clock = FakeClock()
    vehicle = Vehicle(clock=clock, sleep=clock.sleep)
    web = FakeWeb(clock, mode=mode)
    pilot = FakePilot(clock)
    drivetrain = RecordingDrivetrain(clock)
    vehicle.add(web, outputs=[ch.USER_ANGLE, ch.USER_THROTTLE, ch.USER_MODE, ch.USER_ESTOP,
                              ch.USER_MAX_THROTTLE, ch.USER_TIME], name="web")
    vehicle.add(pilot, outputs=[ch.PILOT_ANGLE, ch.PILOT_THROTTLE, ch.PILOT_TIME], name="pilot")
    vehicle.add(DriveMode(mode, has_pilot=has_pilot),
                inputs=[ch.USER_ANGLE, ch.USER_THROTTLE, ch.USER_MODE, ch.PILOT_ANGLE, ch.PILOT_THROTTLE],
                outputs=[ch.DRIVE_ANGLE, ch.DRIVE_THROTTLE, ch.USER_MODE])
    vehicle.add(SafetyStage(max_throttle, user_timeout_s, pilot_timeout_s, clock=clock),
                inputs=[ch.DRIVE_ANGLE, ch.DRIVE_THROTTLE, ch.USER_MODE, ch.USER_ESTOP, ch.USER_MAX_THROTTLE,
                        ch.USER_TIME, ch.PILOT_TIME],
                outputs=[ch.SAFE_ANGLE, ch.SAFE_THROTTLE])
    return vehicle, clock, web, pilot, drivetrain


def add_drivetrain(vehicle, drivetrain):
    vehicle.add(drivetrain, inputs=[ch.SAFE_ANGLE, ch.SAFE_THROTTLE], actuator=True, name="drivetrain")


def run_with_fault(mode, action_factory, loops=40, at_loop=10, **options):
    vehicle, clock, web, pilot, drivetrain = build_vehicle(mode, **options)
    fault = Fault(at_loop, lambda: action_factory(clock, web, pilot))
    vehicle.add(fault, name="fault")
    add_drivetrain(vehicle, drivetrain)
    report = vehicle.start(rate_hz=LOOP_HZ, max_loops=loops)
    return report, clock, drivetrain, fault


# -- the safety stage alone ---------------------------------------------------------------


def test_clamps_to_unit_range():
    clock = FakeClock()
    stage = SafetyStage(clock=clock)
    assert stage.run(1.7, 3.0, "user", False, None, clock(), None) == (1.0, 1.0)
    assert stage.run(-2.0, -5.0, "user", False, None, clock(), None) == (-1.0, -1.0)


def test_limits_throttle_both_ways():
    clock = FakeClock()
    stage = SafetyStage(max_throttle=0.6, clock=clock)
    assert stage.run(0.0, 0.9, "user", False, None, clock(), None) == (0.0, 0.6)
    assert stage.run(0.0, -0.9, "user", False, None, clock(), None) == (0.0, -0.6)
    assert stage.run(0.0, 0.9, "user", False, 0.3, clock(), None) == (0.0, 0.3)
    assert stage.run(0.0, 0.9, "user", False, 0.8, clock(), None) == (0.0, 0.6)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "fast", True])
def test_invalid_throttle_stops(bad):
    clock = FakeClock()
    stage = SafetyStage(clock=clock)
    assert stage.run(0.4, bad, "user", False, None, clock(), None) == (0.4, 0.0)
    assert stage.stop_reason == "invalid command"


def test_invalid_angle_stops():
    clock = FakeClock()
    stage = SafetyStage(clock=clock)
    assert stage.run(math.nan, 0.5, "user", False, None, clock(), None) == (0.0, 0.0)


def test_invalid_values_logged_rate_limited(caplog):
    clock = FakeClock()
    stage = SafetyStage(clock=clock)
    with caplog.at_level(logging.WARNING, logger="autodrive.parts.safety"):
        for _ in range(120):
            stage.run(0.0, math.nan, "user", False, None, clock(), None)
            clock.now += 0.05
    warnings = [record for record in caplog.records if "invalid command" in record.getMessage()]
    assert len(warnings) == 2
    assert re.search(r"\((99|100) similar messages not logged\)", warnings[1].getMessage())


def test_missing_command_stops():
    clock = FakeClock()
    stage = SafetyStage(clock=clock)
    assert stage.run(None, None, "user", None, None, None, None) == (0.0, 0.0)


def test_user_watchdog():
    clock = FakeClock()
    stage = SafetyStage(user_timeout_s=0.5, clock=clock)
    sent = clock()
    clock.now += 0.5
    assert stage.run(0.0, 0.5, "user", False, None, sent, None)[1] == 0.5
    clock.now += 0.01
    assert stage.run(0.0, 0.5, "user", False, None, sent, None)[1] == 0.0
    assert stage.stop_reason == "web client silent"


def test_pilot_timeout_in_pilot_modes():
    clock = FakeClock()
    stage = SafetyStage(pilot_timeout_s=0.5, clock=clock)
    produced = clock()
    clock.now += 0.6
    assert stage.run(0.0, 0.5, "local", False, None, None, produced)[1] == 0.0
    assert stage.run(0.0, 0.5, "local_angle", False, None, clock(), produced)[1] == 0.0
    assert stage.run(0.0, 0.5, "user", False, None, clock(), produced)[1] == 0.5


def test_local_without_web_client_drives():
    clock = FakeClock()
    stage = SafetyStage(clock=clock)
    assert stage.run(0.2, 0.5, "local", None, None, None, clock()) == (0.2, 0.5)


def test_local_stops_when_web_link_drops():
    clock = FakeClock()
    stage = SafetyStage(user_timeout_s=0.5, clock=clock)
    last_message = clock()
    clock.now += 0.6
    assert stage.run(0.2, 0.5, "local", False, None, last_message, clock())[1] == 0.0


def test_estop_latches_until_released():
    clock = FakeClock()
    stage = SafetyStage(clock=clock)
    assert stage.run(0.0, 0.5, "user", True, None, clock(), None)[1] == 0.0
    assert stage.run(0.0, 0.5, "user", None, None, clock(), None)[1] == 0.0
    assert stage.estop_latched
    assert stage.run(0.0, 0.5, "user", False, None, clock(), None)[1] == 0.5
    assert not stage.estop_latched


# -- the drive-mode part -------------------------------------------------------------------


def test_mode_selects_sources():
    mode = DriveMode("user", has_pilot=True, throttle_scale=0.5)
    assert mode.run(0.1, 0.2, None, 0.3, 0.8) == (0.1, 0.2, "user")
    assert mode.run(0.1, 0.2, "local_angle", 0.3, 0.8) == (0.3, 0.2, "local_angle")
    assert mode.run(0.1, 0.2, "local", 0.3, 0.8) == (0.3, 0.4, "local")
    assert mode.run(0.1, 0.2, "user", 0.3, 0.8) == (0.1, 0.2, "user")


def test_mode_without_pilot_stays_user(caplog):
    mode = DriveMode("user", has_pilot=False)
    with caplog.at_level(logging.WARNING, logger="autodrive.parts.safety"):
        for _ in range(10):
            result = mode.run(0.1, 0.2, "local", None, None)
    assert result == (0.1, 0.2, "user")
    assert len([record for record in caplog.records if "no pilot model" in record.getMessage()]) == 1


def test_unknown_mode_ignored():
    mode = DriveMode("local", has_pilot=True)
    assert mode.run(0.1, 0.2, "autopilot", 0.3, 0.4)[2] == "local"


def test_start_mode_needs_pilot():
    assert DriveMode("local", has_pilot=False).mode == "user"
    with pytest.raises(ValueError, match="drive mode"):
        DriveMode("auto")


def test_recorded_mode_is_mode_in_force():
    vehicle, clock, web, pilot, drivetrain = build_vehicle("user", has_pilot=False)
    seen = []
    vehicle.add(type("Probe", (), {"run": lambda self, mode: seen.append(mode)})(), inputs=[ch.USER_MODE])
    add_drivetrain(vehicle, drivetrain)
    web.mode = "local"
    vehicle.start(rate_hz=LOOP_HZ, max_loops=3)
    assert seen == ["user", "user", "user"]


# -- faults injected into a running vehicle -----------------------------------------------


def stop_latency(drivetrain, fault):
    stopped_at = drivetrain.first_stop_after(fault.fired_at)
    assert stopped_at is not None, "throttle never reached zero after the fault"
    return stopped_at - fault.fired_at


def test_drives_before_faults():
    report, _, drivetrain, _ = run_with_fault("user", lambda clock, web, pilot: clock(), loops=5)
    assert report.clean
    assert [command[2] for command in drivetrain.commands[:-1]] == [0.5] * 5


def test_fault_nan_from_pilot():
    def inject(clock, web, pilot):
        pilot.throttle = math.nan
        return clock()

    report, _, drivetrain, fault = run_with_fault("local", inject)
    before = [command[2] for command in drivetrain.commands if command[0] < fault.fired_at]
    after = [command[2] for command in drivetrain.commands if command[0] > fault.fired_at]
    assert report.clean
    assert before == [pytest.approx(0.4)] * len(before)
    assert stop_latency(drivetrain, fault) <= ONE_LOOP_S
    assert after == [0.0] * len(after)


def test_fault_pilot_stalls():
    def inject(clock, web, pilot):
        pilot.stalled = True
        return clock()

    report, _, drivetrain, fault = run_with_fault("local", inject, pilot_timeout_s=0.5)
    latency = stop_latency(drivetrain, fault)
    assert report.clean
    assert 0.5 < latency <= 0.5 + ONE_LOOP_S
    assert drivetrain.throttle == 0.0


def test_fault_web_link_drops():
    def inject(clock, web, pilot):
        web.connected = False
        return clock()

    report, _, drivetrain, fault = run_with_fault("user", inject, user_timeout_s=0.5)
    latency = stop_latency(drivetrain, fault)
    assert 0.5 < latency <= 0.5 + ONE_LOOP_S
    assert drivetrain.throttle == 0.0


def test_fault_web_link_drops_in_local():
    def inject(clock, web, pilot):
        web.connected = False
        return clock()

    _, _, drivetrain, fault = run_with_fault("local", inject, user_timeout_s=0.5)
    assert 0.5 < stop_latency(drivetrain, fault) <= 0.5 + ONE_LOOP_S


def test_fault_estop_holds():
    def inject(clock, web, pilot):
        web.estop = True
        return clock()

    _, _, drivetrain, fault = run_with_fault("local", inject)
    after = [command[2] for command in drivetrain.commands if command[0] > fault.fired_at]
    assert stop_latency(drivetrain, fault) <= ONE_LOOP_S
    assert after == [0.0] * len(after)


def test_fault_part_raises():
    def inject(clock, web, pilot):
        raise RuntimeError("camera cable pulled")

    report, clock, drivetrain, fault = run_with_fault("user", inject)
    assert not report.clean
    assert "camera cable pulled" in report.reason
    assert drivetrain.neutral_calls == 1
    assert drivetrain.throttle == 0.0
    assert drivetrain.commands[-1][0] == clock()


def test_fault_stop_requested():
    vehicle, clock, web, pilot, drivetrain = build_vehicle("user")
    vehicle.add(Fault(10, lambda: vehicle.stop("received SIGTERM")), name="fault")
    add_drivetrain(vehicle, drivetrain)
    report = vehicle.start(rate_hz=LOOP_HZ, max_loops=100)
    assert report.clean
    assert report.loops == 10
    assert drivetrain.neutral_calls == 1
    assert drivetrain.throttle == 0.0
