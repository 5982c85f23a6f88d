"""A fake I2C bus with a PCA9685 on it, for running the real adafruit driver without hardware.

``FakeI2C`` has the ``busio.I2C`` methods that ``adafruit_bus_device`` uses
(``try_lock``, ``unlock``, ``writeto``, ``readfrom_into``,
``writeto_then_readfrom``, ``scan``) and keeps a timestamped history of every
write. ``FakePCA9685`` models the registers the driver touches: MODE1 with its
SLEEP and auto-increment bits, PRESCALE (writable only while asleep, as on the
chip) and the LEDn_ON/LEDn_OFF pairs.

``create_fake_bus`` is the factory for the AUTODRIVE_I2C seam. When the
environment variable FAKE_I2C_LOG names a file, every write is also appended
to it as one JSON line, so a test can read what a subprocess sent.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from dataclasses import dataclass

MODE1 = 0x00
MODE1_SLEEP = 0x10
MODE1_AUTO_INCREMENT = 0x20
LED0_ON_L = 0x06
PRESCALE = 0xFE
PCA9685_ADDRESS = 0x40


@dataclass(frozen=True)
class I2CWrite:
    """One write on the bus: when (time.monotonic seconds), to which device, and the bytes."""

    time_s: float
    address: int
    data: bytes

    @property
    def register(self) -> int | None:
        return self.data[0] if self.data else None

    @property
    def payload(self) -> bytes:
        return self.data[1:]


def led_register(channel: int) -> int:
    """Return the address of LEDn_ON_L of PCA9685 output ``channel``."""
    return LED0_ON_L + 4 * channel


class FakePCA9685:
    """Register file of a PCA9685, starting in its power-on state."""

    def __init__(self) -> None:
        self.registers = bytearray(256)
        self.registers[MODE1] = 0x11  # SLEEP and ALLCALL after power-on
        self.registers[PRESCALE] = 0x1E  # 200 Hz after power-on
        for channel in range(16):
            self.registers[led_register(channel) + 3] = 0x10  # full off
        self.pointer = 0
        self.ignored_prescale_writes = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.pointer = data[0]
        for value in data[1:]:
            self._store(self.pointer, value)
            self._advance()

    def read(self, count: int) -> bytes:
        values = bytearray()
        for _ in range(count):
            values.append(self.registers[self.pointer])
            self._advance()
        return bytes(values)

    def _store(self, register: int, value: int) -> None:
        if register == PRESCALE and not self.registers[MODE1] & MODE1_SLEEP:
            self.ignored_prescale_writes += 1
            return
        self.registers[register] = value

    def _advance(self) -> None:
        if self.registers[MODE1] & MODE1_AUTO_INCREMENT:
            self.pointer = (self.pointer + 1) % 256

    def channel_ticks(self, channel: int) -> tuple[int, int]:
        """Return (ON, OFF) counts of ``channel``, 12 bits each plus the full-on/full-off bit."""
        base = led_register(channel)
        on = self.registers[base] | self.registers[base + 1] << 8
        off = self.registers[base + 2] | self.registers[base + 3] << 8
        return on, off

    @property
    def prescale(self) -> int:
        return self.registers[PRESCALE]


class FakeI2C:
    """A ``busio.I2C`` stand-in with devices by address and a history of every write."""

    def __init__(self, devices: dict[int, FakePCA9685] | None = None, log_path: str | None = None):
        self.devices = dict(devices) if devices is not None else {PCA9685_ADDRESS: FakePCA9685()}
        self.writes: list[I2CWrite] = []
        self.log_path = log_path
        self._lock = threading.Lock()
        self._locked = False

    def try_lock(self) -> bool:
        with self._lock:
            if self._locked:
                return False
            self._locked = True
            return True

    def unlock(self) -> None:
        with self._lock:
            self._locked = False

    def scan(self) -> list[int]:
        return sorted(self.devices)

    def _device(self, address: int) -> FakePCA9685:
        if address not in self.devices:
            raise OSError(errno.EREMOTEIO, f"no device at 0x{address:02x}")
        return self.devices[address]

    def writeto(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        device = self._device(address)
        data = bytes(buffer[start:end])
        if data:
            self._record(address, data)
        device.write(data)

    def readfrom_into(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        device = self._device(address)
        end = len(buffer) if end is None else end
        buffer[start:end] = device.read(end - start)

    def writeto_then_readfrom(
        self, address: int, out_buffer, in_buffer, *,
        out_start: int = 0, out_end: int | None = None, in_start: int = 0, in_end: int | None = None,
    ) -> None:
        device = self._device(address)
        # The driver passes the same buffer for both, so copy out before reading in.
        device.write(bytes(out_buffer[out_start:out_end]))
        in_end = len(in_buffer) if in_end is None else in_end
        in_buffer[in_start:in_end] = device.read(in_end - in_start)

    def _record(self, address: int, data: bytes) -> None:
        write = I2CWrite(time.monotonic(), address, data)
        self.writes.append(write)
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as log_file:
                log_file.write(json.dumps({"time_s": write.time_s, "address": address, "data": list(data)}) + "\n")

    # -- helpers for assertions ----------------------------------------------

    def led_writes(self, channel: int, address: int = PCA9685_ADDRESS) -> list[tuple[int, int]]:
        """Return the (ON, OFF) counts written to ``channel``'s LEDn registers, in order."""
        return led_writes(self.writes, channel, address)


def led_writes(writes: list[I2CWrite], channel: int, address: int = PCA9685_ADDRESS) -> list[tuple[int, int]]:
    """Return the (ON, OFF) counts that ``writes`` sent to ``channel``'s four LEDn registers."""
    counts = []
    for write in writes:
        if write.address == address and write.register == led_register(channel) and len(write.payload) == 4:
            payload = write.payload
            counts.append((payload[0] | payload[1] << 8, payload[2] | payload[3] << 8))
    return counts


def read_log(path: str) -> list[I2CWrite]:
    """Read the writes that a FakeI2C appended to ``path``."""
    writes = []
    with open(path, encoding="utf-8") as log_file:
        for line in log_file:
            entry = json.loads(line)
            writes.append(I2CWrite(entry["time_s"], entry["address"], bytes(entry["data"])))
    return writes


def create_fake_bus(bus_number: int) -> FakeI2C:
    """Return a FakeI2C with one PCA9685 at 0x40; the factory for AUTODRIVE_I2C."""
    return FakeI2C(log_path=os.environ.get("FAKE_I2C_LOG") or None)
