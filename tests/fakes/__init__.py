"""Instrumented stand-ins for hardware (I2C bus, camera backends) used by the tests."""
