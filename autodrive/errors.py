"""The errors autodrive raises on purpose, one hierarchy under AutodriveError.

Each also inherits the built-in error it is a kind of, so callers that catch
ValueError or ImportError keep working.
"""


class AutodriveError(Exception):
    """Base of every error autodrive raises on purpose."""


class ConfigError(AutodriveError, ValueError):
    """A configuration value is invalid; the message names the file and key."""


class PartError(AutodriveError, RuntimeError):
    """A part of the drive loop failed; the message names the part."""


class MissingDependencyError(AutodriveError, ImportError):
    """An optional library is not installed; the message names what to install."""


class NotAvailableError(AutodriveError, RuntimeError):
    """A feature or device is not available on this machine or in this version."""


def require(module: str, extra: str | None = None, hint: str | None = None):
    """Import and return ``module``, or raise MissingDependencyError naming how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        if hint is None:
            hint = f"pip install 'autodrive[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependencyError(f"{module} is not installed ({error}); install it with: {hint}") from error
