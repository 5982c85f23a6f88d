"""Locate the templates/ and config/ folders, from a checkout or a wheel."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"autodrive's {name}/ folder is missing from {installed} and {checkout}; reinstall autodrive")


def templates_dir() -> Path:
    """Return the folder of the web controller's HTML, JS and CSS."""
    return _find("templates")


def config_dir() -> Path:
    """Return the folder holding default.yaml and the example car configs."""
    return _find("config")
