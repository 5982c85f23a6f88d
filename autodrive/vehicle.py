"""The drive loop: parts connected by named channels, run at a fixed rate.

A part is any object with ``run(*inputs)`` that returns its outputs (nothing,
one value, or a tuple), and optionally ``shutdown()``. A threaded part also
has ``update()``, its thread body that loops until ``shutdown()``, and
``run_threaded(*inputs)``, which returns its newest values without blocking.
This is Donkey Car's part contract, so Donkey parts run unchanged.

The loop runs the parts in the order they were added, once per period,
sleeping until the next deadline so the rate does not drift. Every way out
of the loop (its end, ``stop()``, a signal, an exception in a part, a dead
part thread) goes through one shutdown: actuators to neutral first, then
every part's ``shutdown()`` once.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from autodrive.errors import PartError

log = logging.getLogger(__name__)

# Samples kept per part for the p50 and p99; mean and max cover the whole run.
TIMING_WINDOW = 2048


class Memory(dict):
    """Channel values by name, with Donkey Car's list-based ``get`` and ``put``."""

    def get(self, keys: Any, default: Any = None) -> Any:  # type: ignore[override]
        if isinstance(keys, (list, tuple)):
            return [dict.get(self, key, default) for key in keys]
        return dict.get(self, keys, default)

    def put(self, keys: Sequence[str], values: Any) -> None:
        if len(keys) == 1:
            self[keys[0]] = values
            return
        if values is None:
            return
        if len(values) != len(keys):
            raise ValueError(f"put() got {len(values)} values for {len(keys)} channels {list(keys)}")
        for key, value in zip(keys, values):
            self[key] = value


class PartTiming:
    """Run times of one part in bounded memory: totals for all runs, a window for percentiles."""

    def __init__(self, window: int = TIMING_WINDOW):
        self.window = window
        self.samples: list[float] = []
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0

    def compact(self) -> None:
        """Fold samples beyond the window into the totals."""
        extra = len(self.samples) - self.window
        if extra > 0:
            self._fold(self.samples[:extra])
            del self.samples[:extra]

    def _fold(self, samples: list[float]) -> None:
        if samples:
            self.count += len(samples)
            self.total_s += math.fsum(samples)
            self.max_s = max(self.max_s, max(samples))

    def summary(self) -> dict[str, float]:
        """Return count, mean, p50, p99 and max, in seconds."""
        window = sorted(self.samples)
        count = self.count + len(window)
        if count == 0:
            return {"count": 0, "mean_s": 0.0, "p50_s": 0.0, "p99_s": 0.0, "max_s": 0.0}
        total = self.total_s + math.fsum(window)
        peak = max(self.max_s, window[-1] if window else 0.0)
        return {
            "count": count,
            "mean_s": total / count,
            "p50_s": percentile(window, 50),
            "p99_s": percentile(window, 99),
            "max_s": peak,
        }


def _ignore_command(*_inputs: Any) -> None:
    return None


def percentile(ordered: list[float], percent: float) -> float:
    if not ordered:
        return 0.0
    rank = min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class PartEntry:
    """One part added to a Vehicle, with its channels and timing."""

    part: Any
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    threaded: bool
    run_condition: str | None
    actuator: bool
    call: Callable[..., Any]
    timing: PartTiming = field(default_factory=PartTiming)
    thread: threading.Thread | None = None
    thread_error: BaseException | None = None


@dataclass
class StopReport:
    """The outcome of a drive loop: clean or not, why, and its counters."""

    clean: bool
    reason: str
    loops: int
    overruns: int
    error: BaseException | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.clean else 1


class Vehicle:
    """Runs parts in order at a fixed rate and shuts them down safely.

    ``clock`` and ``sleep`` default to ``time.perf_counter`` and ``time.sleep``;
    tests pass a fake pair to drive the scheduler without real time.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        timing: bool = True,
        stall_timeout_s: float | None = None,
    ):
        self.mem = Memory()
        self.parts: list[PartEntry] = []
        self.clock = clock
        self.sleep = sleep
        self.timing = timing
        self.loops = 0
        self.overruns = 0
        self.start_errors = PartTiming()
        self.loop_hz = 0.0
        self._stop_event = threading.Event()
        self._stop_reason = ""
        self._started = False
        self._shut_down = False
        self._shutdown_failed = False
        self.stall_timeout_s = stall_timeout_s
        # time.monotonic() when the running iteration began; None between iterations.
        self._heartbeat: float | None = None
        self._stalled_reason = ""

    # -- building ------------------------------------------------------------

    def add(
        self,
        part: Any,
        inputs: Iterable[str] = (),
        outputs: Iterable[str] = (),
        threaded: bool = False,
        run_condition: str | None = None,
        actuator: bool = False,
        name: str | None = None,
    ) -> PartEntry:
        """Add a part; it runs after the parts added before it.

        ``actuator=True`` marks a part that drives motors: at shutdown it is sent
        to neutral before anything else is shut down, through its ``neutral()``
        method, or else ``run()`` with 0.0 for every input.
        """
        if self._started:
            raise PartError("parts must be added before Vehicle.start()")
        inputs = tuple(inputs or ())
        outputs = tuple(outputs or ())
        for channel in inputs + outputs + ((run_condition,) if run_condition else ()):
            if not isinstance(channel, str) or not channel:
                raise PartError(f"channel names must be non-empty strings, got {channel!r}")

        name = self._unique_name(name or type(part).__name__)
        method = "run_threaded" if threaded else "run"
        call = getattr(part, method, None)
        if not callable(call):
            raise PartError(f"part {name} has no {method}() method, so it cannot be added with threaded={threaded}")
        if threaded and not callable(getattr(part, "update", None)):
            raise PartError(f"part {name} is threaded but has no update() method to run on its thread")

        for channel in inputs + outputs + ((run_condition,) if run_condition else ()):
            self.mem.setdefault(channel, None)

        entry = PartEntry(part, name, inputs, outputs, threaded, run_condition, actuator, call)
        self.parts.append(entry)
        log.debug("added part %s: inputs %s, outputs %s%s", name, list(inputs), list(outputs), " (threaded)" if threaded else "")
        return entry

    def _unique_name(self, base: str) -> str:
        taken = {entry.name for entry in self.parts}
        if base not in taken:
            return base
        number = 2
        while f"{base}:{number}" in taken:
            number += 1
        return f"{base}:{number}"

    # -- running -------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to end after the current iteration; safe from any thread."""
        if not self._stop_event.is_set():
            self._stop_reason = reason
            self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def start(
        self,
        rate_hz: float | None = 20,
        max_loops: int | None = None,
        handle_signals: bool = False,
        max_loop_count: int | None = None,
        verbose: bool = False,
    ) -> StopReport:
        """Run the loop until stopped, then shut down; return how it ended.

        ``rate_hz`` of None or 0 runs as fast as possible. With
        ``handle_signals`` (main thread only), SIGTERM, SIGINT and SIGHUP stop
        the loop and SIGUSR1 logs the per-part timing so far. ``max_loop_count`` and
        ``verbose`` are accepted for Donkey Car compatibility.
        """
        if max_loops is None:
            max_loops = max_loop_count
        if rate_hz is not None and rate_hz < 0:
            raise ValueError(f"rate_hz must be positive or None, got {rate_hz}")
        self._started = True
        restore = self._install_signal_handlers() if handle_signals else None
        report: StopReport

        try:
            self._start_threads()
            log.info("drive loop started: %d parts at %s", len(self.parts), f"{rate_hz:g} Hz" if rate_hz else "full speed")
            self._loop(rate_hz, max_loops)
            if self._stalled_reason:
                report = StopReport(False, self._stalled_reason, self.loops, self.overruns)
            else:
                reason = self._stop_reason or (f"reached max_loops={max_loops}" if max_loops else "loop ended")
                report = StopReport(True, reason, self.loops, self.overruns)
        except KeyboardInterrupt:
            report = StopReport(True, "interrupted (Ctrl-C)", self.loops, self.overruns)
        except Exception as error:  # any part's failure ends the drive, safely
            log.error("drive loop stopped by an error: %s", error, exc_info=not isinstance(error, PartError))
            report = StopReport(False, str(error), self.loops, self.overruns, error)
        except BaseException:
            # SystemExit from a part, for example: pass it on, but with the
            # motors at neutral rather than at their last command.
            try:
                self.shutdown()
            finally:
                if restore:
                    restore()
            raise

        # The signal handlers stay in place during shutdown, so a second
        # Ctrl-C cannot interrupt the actuators on their way to neutral.
        try:
            self.shutdown()
        finally:
            if restore:
                restore()
        if self._shutdown_failed and report.clean:
            report = StopReport(False, report.reason + "; a part failed to shut down", report.loops, report.overruns)
        log.info("drive loop stopped after %d loops (%s)", report.loops, report.reason)
        return report

    def _start_threads(self) -> None:
        for entry in self.parts:
            if entry.threaded:
                entry.thread = threading.Thread(
                    target=self._thread_body, args=(entry,), name=f"part-{entry.name}", daemon=True
                )
                entry.thread.start()

    def _thread_body(self, entry: PartEntry) -> None:
        try:
            entry.part.update()
        except BaseException as error:  # reported by the loop, which names the part
            entry.thread_error = error
            log.error("thread of part %s failed: %s", entry.name, error, exc_info=True)

    def _loop(self, rate_hz: float | None, max_loops: int | None) -> None:
        period = 1.0 / rate_hz if rate_hz else 0.0
        clock = self.clock
        sleep = self.sleep
        record_error = self.start_errors.samples.append
        threaded = [entry for entry in self.parts if entry.threaded]
        deadline = clock()
        rate_mark_time = deadline
        rate_mark_loops = 0

        while not self._stop_event.is_set():
            self._heartbeat = time.monotonic()
            started = clock()
            record_error(started - deadline)
            for entry in threaded:
                if not entry.thread.is_alive():
                    self._raise_thread_stopped(entry)

            self.run_once()
            # The stall watchdog times the work of an iteration, not the sleep after it.
            self._heartbeat = None
            self.loops += 1
            if self.loops == 1:
                self._start_stall_watchdog()

            if self.loops % 1024 == 0:
                self._compact_timings()
            if started - rate_mark_time >= 1.0:
                self.loop_hz = (self.loops - rate_mark_loops) / (started - rate_mark_time)
                self.mem["vehicle/loop_hz"] = self.loop_hz
                rate_mark_time, rate_mark_loops = started, self.loops
            if max_loops is not None and self.loops >= max_loops:
                break

            if period:
                deadline += period
                now = clock()
                if now < deadline:
                    sleep(deadline - now)
                else:
                    self.overruns += 1
                    if now - deadline > period:
                        # More than a whole period late: start again from now
                        # instead of running the missed iterations back to back.
                        deadline = now
            else:
                deadline = clock()

    def _start_stall_watchdog(self) -> None:
        if not self.stall_timeout_s or not any(entry.actuator for entry in self.parts):
            return
        watchdog = threading.Thread(target=self._watch_for_stalls, name="loop-watchdog", daemon=True)
        watchdog.start()

    def _watch_for_stalls(self) -> None:
        timeout_s = self.stall_timeout_s
        while not self._stop_event.wait(timeout_s / 4):
            heartbeat = self._heartbeat
            if heartbeat is None:
                continue
            stalled_s = time.monotonic() - heartbeat
            if stalled_s > timeout_s:
                self._trip_stall_watchdog(stalled_s)
                return

    def _trip_stall_watchdog(self, stalled_s: float) -> None:
        """Put the actuators to neutral from the watchdog thread while the loop is stuck."""
        self._stalled_reason = (
            f"an iteration of the drive loop has run for {stalled_s:.1f} s, longer than the "
            f"stall timeout of {self.stall_timeout_s:g} s; a part is blocked"
        )
        log.critical("%s: setting actuators to neutral", self._stalled_reason)
        for entry in self.parts:
            if entry.actuator:
                # The stuck iteration may still reach the actuator when the
                # blocked part returns: from now on it takes no commands.
                entry.call = _ignore_command
                self._set_neutral(entry)
        self.stop(self._stalled_reason)

    def _raise_thread_stopped(self, entry: PartEntry) -> None:
        if entry.thread_error is not None:
            raise PartError(f"part {entry.name}: its thread failed: {entry.thread_error!r}") from entry.thread_error
        raise PartError(f"part {entry.name}: its thread ended while the car was driving")

    def run_once(self) -> None:
        """Run every part once, in order, passing channels through memory."""
        mem = self.mem
        clock = self.clock
        timing = self.timing
        before = clock() if timing else 0.0

        for entry in self.parts:
            condition = entry.run_condition
            if condition is not None and not mem[condition]:
                continue
            try:
                result = entry.call(*[mem[name] for name in entry.inputs])
            except Exception as error:
                raise PartError(f"part {entry.name} failed: {error!r}") from error

            outputs = entry.outputs
            if len(outputs) == 1:
                mem[outputs[0]] = result
            elif outputs and result is not None:
                self._store_outputs(entry, result)

            if timing:
                after = clock()
                entry.timing.samples.append(after - before)
                before = after

    def _store_outputs(self, entry: PartEntry, result: Any) -> None:
        outputs = entry.outputs
        if not isinstance(result, (tuple, list)) or len(result) != len(outputs):
            got = f"{len(result)} values" if isinstance(result, (tuple, list)) else f"one {type(result).__name__}"
            raise PartError(
                f"part {entry.name} returned {got} but was added with {len(outputs)} outputs {list(outputs)}"
            )
        mem = self.mem
        for name, value in zip(outputs, result):
            mem[name] = value

    def _compact_timings(self) -> None:
        for entry in self.parts:
            entry.timing.compact()
        self.start_errors.compact()

    # -- stopping ------------------------------------------------------------

    def _install_signal_handlers(self) -> Callable[[], None] | None:
        if threading.current_thread() is not threading.main_thread():
            return None

        def on_signal(number: int, _frame: Any) -> None:
            name = signal.Signals(number).name
            if self._stop_event.is_set():
                log.info("received %s while already stopping; the motors go to neutral first", name)
                return
            log.info("received %s, stopping", name)
            self.stop(f"received {name}")

        def on_report_request(_number: int, _frame: Any) -> None:
            log.info("part timing so far:\n%s", self.timing_report())

        numbers = [signal.SIGTERM, signal.SIGINT]
        if hasattr(signal, "SIGHUP"):
            # Sent when the SSH session or terminal that started the drive
            # closes. Left to its default, it ends the process at once, and
            # the PWM board goes on sending the last throttle pulse.
            numbers.append(signal.SIGHUP)
        previous = {number: signal.signal(number, on_signal) for number in numbers}
        if hasattr(signal, "SIGUSR1"):
            previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, on_report_request)

        def restore() -> None:
            for number, handler in previous.items():
                signal.signal(number, handler)

        return restore

    def shutdown(self) -> None:
        """Set actuators to neutral, then shut every part down once.

        A part that raises is logged and the others are still shut down.
        Safe to call more than once.
        """
        if self._shut_down:
            return
        self._shut_down = True
        self._stop_event.set()

        for entry in self.parts:
            if entry.actuator:
                self._set_neutral(entry)

        for entry in self.parts:
            shutdown = getattr(entry.part, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception as error:
                    self._shutdown_failed = True
                    log.error("part %s failed to shut down: %r", entry.name, error, exc_info=True)

        for entry in self.parts:
            if entry.thread is not None:
                entry.thread.join(timeout=2.0)
                if entry.thread.is_alive():
                    log.warning("thread of part %s did not end within 2 s after shutdown()", entry.name)

        if self.timing and self.parts:
            log.info("part timing:\n%s", self.timing_report())

    def _set_neutral(self, entry: PartEntry) -> None:
        try:
            neutral = getattr(entry.part, "neutral", None)
            if callable(neutral):
                neutral()
            else:
                entry.part.run(*[0.0] * len(entry.inputs))
            log.info("actuator %s set to neutral", entry.name)
        except Exception as error:
            self._shutdown_failed = True
            log.critical("actuator %s could not be set to neutral: %r", entry.name, error, exc_info=True)

    # -- reporting -----------------------------------------------------------

    def timing_summary(self) -> dict[str, dict[str, float]]:
        """Return each part's timing summary, by part name."""
        return {entry.name: entry.timing.summary() for entry in self.parts}

    def timing_report(self) -> str:
        """Return a table of per-part timing in milliseconds, plus loop figures."""
        rows = [f"{'part':<28} {'runs':>8} {'mean ms':>9} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}"]
        for name, stats in self.timing_summary().items():
            rows.append(
                f"{name[:28]:<28} {stats['count']:>8} {stats['mean_s'] * 1e3:>9.3f} "
                f"{stats['p50_s'] * 1e3:>9.3f} {stats['p99_s'] * 1e3:>9.3f} {stats['max_s'] * 1e3:>9.3f}"
            )
        rows.append(f"loops: {self.loops}, overruns: {self.overruns}, measured rate: {self.loop_hz:.1f} Hz")
        return "\n".join(rows)
