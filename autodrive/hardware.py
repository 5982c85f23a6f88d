"""Platform detection and the I2C bus seam, in one place.

Nothing here imports a hardware library at module level, so ``import
autodrive`` and the simulator work on a laptop without picamera2 or Blinka.

The environment variable ``AUTODRIVE_I2C`` is a testing seam: set to
``module:function``, every I2C bus that autodrive opens comes from
``function(bus_number)`` instead of Blinka. The tests use it to run the real
PCA9685 driver over a fake bus that records every register write, for example
``AUTODRIVE_I2C=tests.fakes.i2c:create_fake_bus autodrive calibrate``.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from autodrive.errors import ConfigError, NotAvailableError, require

log = logging.getLogger(__name__)

I2C_ENV = "AUTODRIVE_I2C"
PI_MODEL_FILE = Path("/proc/device-tree/model")
ENABLE_I2C_HINT = "enable I2C with 'sudo raspi-config nonint do_i2c 0' and reboot"


def board_model() -> str:
    """Return the board's model string from the device tree, or "" when there is none."""
    try:
        return PI_MODEL_FILE.read_text(encoding="utf-8", errors="replace").rstrip("\x00\n ")
    except OSError:
        return ""


def is_raspberry_pi() -> bool:
    """Return True on a Raspberry Pi, judged by its device-tree model string."""
    return board_model().startswith("Raspberry Pi")


def i2c_device_path(bus_number: int) -> Path:
    """Return the Linux device file of I2C bus ``bus_number`` (/dev/i2c-N)."""
    return Path(f"/dev/i2c-{bus_number}")


def fake_i2c_factory() -> str | None:
    """Return the ``module:function`` named by AUTODRIVE_I2C, or None when it is unset."""
    value = os.environ.get(I2C_ENV, "").strip()
    return value or None


def i2c_bus_present(bus_number: int) -> bool:
    """Return True when bus ``bus_number`` can be opened: a fake bus is configured or /dev/i2c-N exists."""
    return fake_i2c_factory() is not None or i2c_device_path(bus_number).exists()


def create_i2c_bus(bus_number: int) -> Any:
    """Open I2C bus ``bus_number`` and return a ``busio.I2C``-like object.

    The bus comes from the AUTODRIVE_I2C factory when that is set, else from
    Blinka: ``busio.I2C(board.SCL, board.SDA)`` for bus 1 (the Pi's header
    pins) and ``adafruit_extended_bus.ExtendedI2C(N)`` for any other bus.
    Raises NotAvailableError when the bus does not exist on this machine and
    MissingDependencyError when Blinka is not installed.
    """
    factory_name = fake_i2c_factory()
    if factory_name is not None:
        return _call_factory(factory_name, bus_number)

    device = i2c_device_path(bus_number)
    if not device.exists():
        where = ENABLE_I2C_HINT if is_raspberry_pi() else "this machine has no such bus"
        raise NotAvailableError(
            f"I2C bus {bus_number} ({device}) not found: {where}; check drivetrain.i2c_bus, "
            "or set drivetrain.type: sim to drive the simulator"
        )

    if bus_number == 1:
        board = require("board", extra="pi")
        busio = require("busio", extra="pi")
        return busio.I2C(board.SCL, board.SDA)
    extended_bus = require("adafruit_extended_bus", hint="pip install adafruit-extended-bus")
    return extended_bus.ExtendedI2C(bus_number)


def _call_factory(factory_name: str, bus_number: int) -> Any:
    module_name, _, function_name = factory_name.partition(":")
    if not module_name or not function_name:
        raise ConfigError(f"{I2C_ENV}={factory_name!r} must be module:function, for example tests.fakes.i2c:create_fake_bus")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"{I2C_ENV}={factory_name!r}: cannot import {module_name}: {error}") from error
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise ConfigError(f"{I2C_ENV}={factory_name!r}: {module_name} has no function {function_name}")
    log.info("I2C bus %d comes from %s (%s is set)", bus_number, factory_name, I2C_ENV)
    return factory(bus_number)


def scan_i2c_bus(bus: Any) -> list[int]:
    """Return the 7-bit addresses that respond on ``bus``, holding its lock while scanning."""
    while not bus.try_lock():
        time.sleep(0.001)
    try:
        return list(bus.scan())
    finally:
        bus.unlock()


# One simulator world per config object, so that the camera and the drivetrain
# that create_camera() and create_drivetrain() build for the same config share it.
_sim_memo: dict[str, Any] = {}


def sim_world(cfg: Any) -> Any:
    """Return the simulator world for ``cfg``, created by ``autodrive.sim.create_sim`` on first use."""
    if _sim_memo.get("config") is cfg:
        return _sim_memo["world"]
    try:
        from autodrive.sim import create_sim
    except ImportError as error:
        raise NotAvailableError(f"the simulator is not available in this installation: {error}") from error
    world = create_sim(cfg)
    _sim_memo["config"] = cfg
    _sim_memo["world"] = world
    return world
