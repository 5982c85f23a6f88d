"""The drive loop: part contract, channels, scheduling, threads and shutdown."""

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from autodrive.errors import PartError
from autodrive.vehicle import Memory, PartTiming, Vehicle

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    """A clock that moves only when the loop sleeps or a part does work."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def work(self, seconds):
        self.now += seconds


class Counter:
    def __init__(self):
        self.value = 0

    def run(self):
        self.value += 1
        return self.value


class Doubler:
    def run(self, value):
        return value * 2


class Recorder:
    """Keeps every input it was run with, and how it was shut down."""

    def __init__(self, log=None, name="recorder"):
        self.calls = []
        self.log = log if log is not None else []
        self.name = name

    def run(self, *values):
        self.calls.append(values)

    def shutdown(self):
        self.log.append(f"shutdown {self.name}")


class Actuator(Recorder):
    def neutral(self):
        self.log.append(f"neutral {self.name}")


class Failing:
    def __init__(self, after_runs=0):
        self.runs = 0
        self.after_runs = after_runs

    def run(self):
        self.runs += 1
        if self.runs > self.after_runs:
            raise ValueError("sensor unplugged")


class DonkeyStyleCamera:
    """Written the way Donkey Car parts are: update() loops, run_threaded() returns the newest value."""

    def __init__(self):
        self.frame = None
        self.on = True
        self.count = 0

    def update(self):
        while self.on:
            self.count += 1
            self.frame = f"frame-{self.count}"
            time.sleep(0.001)

    def run_threaded(self):
        return self.frame

    def run(self):
        return self.frame

    def shutdown(self):
        self.on = False


def test_memory_donkey_get_and_put():
    memory = Memory()

    memory.put(["user/angle", "user/throttle"], (0.5, 0.25))
    memory.put(["recording"], True)

    assert memory.get(["user/angle", "user/throttle", "missing"]) == [0.5, 0.25, None]
    assert memory["recording"] is True
    assert memory.get("recording") is True


def test_parts_run_in_order_passing_channels():
    vehicle = Vehicle(timing=False)
    sink = Recorder()
    vehicle.add(Counter(), outputs=["count"])
    vehicle.add(Doubler(), inputs=["count"], outputs=["doubled"])
    vehicle.add(sink, inputs=["count", "doubled"])

    vehicle.start(rate_hz=None, max_loops=3)

    assert sink.calls == [(1, 2), (2, 4), (3, 6)]
    assert vehicle.mem["doubled"] == 6


def test_run_condition_skips_part_when_false():
    vehicle = Vehicle(timing=False)
    sink = Recorder()
    vehicle.mem["recording"] = False
    vehicle.add(Counter(), outputs=["count"])
    vehicle.add(sink, inputs=["count"], run_condition="recording")

    vehicle.run_once()
    vehicle.mem["recording"] = True
    vehicle.run_once()
    vehicle.run_once()

    assert sink.calls == [(2,), (3,)]


def test_missing_input_channel_reads_none():
    vehicle = Vehicle(timing=False)
    sink = Recorder()
    vehicle.add(sink, inputs=["nobody/writes/this"])

    vehicle.run_once()

    assert sink.calls == [(None,)]


def test_multiple_outputs_stored_by_name():
    class Joystick:
        def run(self):
            return 0.1, 0.2, "user"

    vehicle = Vehicle(timing=False)
    vehicle.add(Joystick(), outputs=["user/angle", "user/throttle", "user/mode"])

    vehicle.run_once()

    assert vehicle.mem.get(["user/angle", "user/throttle", "user/mode"]) == [0.1, 0.2, "user"]


def test_none_result_keeps_previous_outputs():
    class Sometimes:
        def __init__(self):
            self.results = [(1, 2), None]

        def run(self):
            return self.results.pop(0)

    vehicle = Vehicle(timing=False)
    vehicle.add(Sometimes(), outputs=["a", "b"])

    vehicle.run_once()
    vehicle.run_once()

    assert vehicle.mem.get(["a", "b"]) == [1, 2]


def test_wrong_output_count_names_part():
    class TwoValues:
        def run(self):
            return 1, 2

    vehicle = Vehicle(timing=False)
    vehicle.add(TwoValues(), outputs=["a", "b", "c"], name="joystick")

    report = vehicle.start(rate_hz=None, max_loops=5)

    assert not report.clean
    assert report.exit_code == 1
    assert "part joystick returned 2 values but was added with 3 outputs ['a', 'b', 'c']" in report.reason
    assert report.loops == 0


def test_add_rejects_part_without_run():
    vehicle = Vehicle()

    with pytest.raises(PartError, match="part object has no run"):
        vehicle.add(object())
    with pytest.raises(PartError, match="threaded but has no update"):
        vehicle.add(type("OnlyThreaded", (), {"run_threaded": lambda self: 1})(), threaded=True)


def test_duplicate_part_names_get_numbers():
    vehicle = Vehicle()

    first = vehicle.add(Counter())
    second = vehicle.add(Counter())

    assert (first.name, second.name) == ("Counter", "Counter:2")


def test_scheduler_sleeps_to_deadline():
    clock = FakeClock()

    class Work:
        def run(self):
            clock.work(0.010)

    vehicle = Vehicle(clock=clock, sleep=clock.sleep, timing=False)
    vehicle.add(Work())

    vehicle.start(rate_hz=20, max_loops=4)

    assert clock.sleeps == pytest.approx([0.040, 0.040, 0.040])
    assert vehicle.overruns == 0


def test_scheduler_does_not_drift():
    clock = FakeClock()
    durations = iter([0.002, 0.031, 0.017, 0.044, 0.001] * 20)

    class Jitter:
        def run(self):
            clock.work(next(durations))

    vehicle = Vehicle(clock=clock, sleep=clock.sleep, timing=False)
    vehicle.add(Jitter())
    start = clock.now

    vehicle.start(rate_hz=20, max_loops=100)

    # 100 iterations at 50 ms each start exactly on the 50 ms grid, so the
    # last one starts at 99 * 50 ms and ends after its own work.
    assert max(vehicle.start_errors.samples) == pytest.approx(0.0, abs=1e-9)
    assert clock.now - start == pytest.approx(99 * 0.050 + 0.001)


def test_scheduler_counts_overruns_and_skips_missed_slots():
    clock = FakeClock()
    durations = iter([0.010, 0.060, 0.130, 0.010, 0.010])

    class Slow:
        def run(self):
            clock.work(next(durations))

    vehicle = Vehicle(clock=clock, sleep=clock.sleep, timing=False)
    vehicle.add(Slow())

    vehicle.start(rate_hz=20, max_loops=5)

    assert vehicle.overruns == 2
    # After the 130 ms iteration the loop restarts its grid from that moment
    # rather than running missed iterations back to back: the 4th iteration
    # is followed by a full 40 ms sleep, not by a burst.
    assert clock.sleeps == pytest.approx([0.040, 0.040])


def test_unlimited_rate_never_sleeps():
    clock = FakeClock()
    vehicle = Vehicle(clock=clock, sleep=clock.sleep, timing=False)
    vehicle.add(Counter())

    vehicle.start(rate_hz=None, max_loops=50)

    assert clock.sleeps == []
    assert vehicle.loops == 50


def test_max_loop_count_alias_for_donkey():
    vehicle = Vehicle(timing=False)
    counter = Counter()
    vehicle.add(counter)

    report = vehicle.start(rate_hz=None, max_loop_count=7)

    assert counter.value == 7
    assert report.clean


def test_timing_summary_per_part():
    clock = FakeClock()

    class Takes:
        def __init__(self, seconds):
            self.seconds = seconds

        def run(self):
            clock.work(self.seconds)

    vehicle = Vehicle(clock=clock, sleep=clock.sleep)
    vehicle.add(Takes(0.002), name="fast")
    vehicle.add(Takes(0.005), name="slow")

    vehicle.start(rate_hz=None, max_loops=10)
    summary = vehicle.timing_summary()

    assert summary["fast"]["count"] == 10
    assert summary["fast"]["mean_s"] == pytest.approx(0.002)
    assert summary["slow"]["p99_s"] == pytest.approx(0.005)
    assert summary["slow"]["max_s"] == pytest.approx(0.005)
    assert "slow" in vehicle.timing_report()


def test_timing_memory_is_bounded():
    timing = PartTiming(window=100)

    for value in range(1000):
        timing.samples.append(value / 1000)
        timing.compact()

    summary = timing.summary()
    assert len(timing.samples) == 100
    assert summary["count"] == 1000
    assert summary["max_s"] == pytest.approx(0.999)
    assert summary["mean_s"] == pytest.approx(0.4995)
    assert summary["p50_s"] == pytest.approx(0.949)


def test_threaded_donkey_part_runs_unchanged():
    vehicle = Vehicle(timing=False)
    camera = DonkeyStyleCamera()
    sink = Recorder()
    vehicle.add(camera, outputs=["cam/image_array"], threaded=True)
    vehicle.add(sink, inputs=["cam/image_array"])

    report = vehicle.start(rate_hz=200, max_loops=20)

    frames = [call[0] for call in sink.calls if call[0] is not None]
    assert report.clean
    assert frames, "the threaded part never delivered a frame"
    assert all(frame.startswith("frame-") for frame in frames)
    assert camera.on is False
    assert not vehicle.parts[0].thread.is_alive()


def test_dead_thread_stops_vehicle_naming_part():
    class Crashes:
        def update(self):
            raise OSError("camera cable loose")

        def run_threaded(self):
            return None

    vehicle = Vehicle(timing=False)
    actuator = Actuator(name="motors")
    vehicle.add(Crashes(), outputs=["cam/image_array"], threaded=True, name="camera")
    vehicle.add(actuator, inputs=["angle"], actuator=True, name="motors")

    report = vehicle.start(rate_hz=100, max_loops=1000)

    assert not report.clean
    assert "part camera: its thread failed" in report.reason
    assert "camera cable loose" in report.reason
    assert "neutral motors" in actuator.log


def test_thread_that_returns_is_also_an_error():
    class Ends:
        def update(self):
            return

        def run_threaded(self):
            return 1

    vehicle = Vehicle(timing=False)
    vehicle.add(Ends(), outputs=["x"], threaded=True, name="replay")

    report = vehicle.start(rate_hz=100, max_loops=1000)

    assert not report.clean
    assert "part replay: its thread ended while the car was driving" in report.reason


def test_part_exception_gives_safe_shutdown_order():
    log = []
    vehicle = Vehicle(timing=False)
    vehicle.add(Recorder(log, "camera"))
    vehicle.add(Failing(after_runs=2), name="pilot")
    vehicle.add(Actuator(log, "steering"), inputs=["angle"], actuator=True)
    vehicle.add(Actuator(log, "throttle"), inputs=["throttle"], actuator=True)

    report = vehicle.start(rate_hz=None, max_loops=100)

    assert not report.clean
    assert "part pilot failed: ValueError('sensor unplugged')" in report.reason
    assert report.loops == 2
    assert log == [
        "neutral steering",
        "neutral throttle",
        "shutdown camera",
        "shutdown steering",
        "shutdown throttle",
    ]


def test_system_exit_sets_neutral():
    log = []
    motors = Actuator(log, "motors")

    class QuitsOnThirdRun:
        def __init__(self):
            self.runs = 0

        def run(self):
            self.runs += 1
            if self.runs == 3:
                sys.exit("joystick asked to quit")
            return 0.7

    vehicle = Vehicle(timing=False)
    vehicle.add(QuitsOnThirdRun(), outputs=["throttle"])
    vehicle.add(motors, inputs=["throttle"], actuator=True)

    with pytest.raises(SystemExit, match="joystick asked to quit"):
        vehicle.start(rate_hz=None, max_loops=10)

    assert motors.calls == [(0.7,), (0.7,)]
    assert log == ["neutral motors", "shutdown motors"]


def test_failing_shutdown_does_not_skip_others():
    log = []

    class BadShutdown:
        def run(self):
            pass

        def shutdown(self):
            raise RuntimeError("disk full")

    vehicle = Vehicle(timing=False)
    vehicle.add(Recorder(log, "first"))
    vehicle.add(BadShutdown())
    vehicle.add(Recorder(log, "last"))

    report = vehicle.start(rate_hz=None, max_loops=1)

    assert log == ["shutdown first", "shutdown last"]
    assert not report.clean
    assert "a part failed to shut down" in report.reason


def test_shutdown_runs_once():
    log = []
    vehicle = Vehicle(timing=False)
    vehicle.add(Actuator(log, "motors"), actuator=True)

    vehicle.start(rate_hz=None, max_loops=1)
    vehicle.shutdown()

    assert log == ["neutral motors", "shutdown motors"]


def test_actuator_without_neutral_gets_zero_run():
    class DonkeyThrottle:
        def __init__(self):
            self.pulses = []

        def run(self, throttle):
            self.pulses.append(throttle)

    vehicle = Vehicle(timing=False)
    vehicle.mem["throttle"] = 0.7
    throttle = DonkeyThrottle()
    vehicle.add(throttle, inputs=["throttle"], actuator=True)

    vehicle.start(rate_hz=None, max_loops=2)

    assert throttle.pulses == [0.7, 0.7, 0.0]


def test_stop_from_another_thread_is_clean():
    vehicle = Vehicle(timing=False)
    vehicle.add(Counter())
    timer = threading.Timer(0.2, vehicle.stop, args=("operator pressed stop",))

    timer.start()
    report = vehicle.start(rate_hz=100)

    assert report.clean
    assert report.reason == "operator pressed stop"
    assert report.loops > 0


def test_add_after_start_rejected():
    vehicle = Vehicle(timing=False)
    vehicle.add(Counter())
    vehicle.start(rate_hz=None, max_loops=1)

    with pytest.raises(PartError, match="before Vehicle.start"):
        vehicle.add(Counter())


CHILD_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from autodrive.vehicle import Vehicle

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    class Motors:
        def run(self, throttle):
            pass

        def neutral(self):
            print("motors neutral", flush=True)

    class Ready:
        def __init__(self):
            self.said = False

        def run(self):
            if not self.said:
                print("running", flush=True)
                self.said = True
            return 0.5

    vehicle = Vehicle()
    vehicle.add(Ready(), outputs=["throttle"])
    vehicle.add(Motors(), inputs=["throttle"], actuator=True)
    report = vehicle.start(rate_hz=50, handle_signals=True)
    print("stopped:", report.reason, flush=True)
    sys.exit(report.exit_code)
    """
)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_stops_child_cleanly(signal_number):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "running"

    child.send_signal(signal_number)
    stdout, stderr = child.communicate(timeout=30)

    assert child.returncode == 0, stderr
    assert "motors neutral" in stdout
    assert f"stopped: received {signal.Signals(signal_number).name}" in stdout


def test_stalled_part_trips_watchdog():
    log = []
    release = threading.Event()
    motors = Actuator(log, "motors")

    class HangsOnThirdRun:
        def __init__(self):
            self.runs = 0

        def run(self):
            self.runs += 1
            if self.runs == 3:
                release.wait(timeout=30)
            return 0.8

    vehicle = Vehicle(timing=False, stall_timeout_s=0.2)
    vehicle.add(HangsOnThirdRun(), outputs=["throttle"], name="pilot")
    vehicle.add(motors, inputs=["throttle"], actuator=True)
    # The test releases the hung part only after the watchdog has acted.
    waiter = threading.Thread(target=lambda: (vehicle._stop_event.wait(30), release.set()))
    waiter.start()

    report = vehicle.start(rate_hz=100, max_loops=1000)
    waiter.join()

    assert not report.clean
    assert "longer than the stall timeout of 0.2 s" in report.reason
    assert report.loops == 3
    assert log[0] == "neutral motors"
    # The motors ran twice before the stall and took no command after it.
    assert motors.calls == [(0.8,), (0.8,)]


def test_slow_first_iteration_does_not_trip_watchdog():
    motors = Actuator(name="motors")

    class SlowStart:
        def __init__(self):
            self.runs = 0

        def run(self):
            self.runs += 1
            if self.runs == 1:
                time.sleep(1.0)
            return 0.1

    vehicle = Vehicle(timing=False, stall_timeout_s=0.5)
    vehicle.add(SlowStart(), outputs=["throttle"])
    vehicle.add(motors, inputs=["throttle"], actuator=True)

    report = vehicle.start(rate_hz=100, max_loops=20)

    assert report.clean
    assert len(motors.calls) == 20


def test_stall_watchdog_ignores_sleep():
    motors = Actuator(name="motors")
    vehicle = Vehicle(timing=False, stall_timeout_s=0.2)
    vehicle.add(Counter(), outputs=["throttle"])
    vehicle.add(motors, inputs=["throttle"], actuator=True)

    # Each iteration takes microseconds, then the loop sleeps 0.25 s to its next deadline.
    report = vehicle.start(rate_hz=4, max_loops=4)

    assert report.clean, report.reason
    assert motors.calls == [(1,), (2,), (3,), (4,)]


def test_sigusr1_logs_timing_while_driving():
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "running"

    child.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=30)

    assert child.returncode == 0, stderr
    assert "part timing so far" in stderr
    assert "Motors" in stderr.split("part timing so far")[1]
    assert "stopped: received SIGTERM" in stdout
