"""Options shared by every sub-command: --car, --set and -v."""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click


@dataclass
class AppContext:
    """Options shared by every sub-command."""

    car_path: Path = field(default_factory=Path.cwd)
    overrides: list[str] = field(default_factory=list)
    verbose: int = 0

    def config(self, extra_overrides: list[str] | None = None):
        """Load the car's config with the ``--set`` overrides applied."""
        from autodrive.config import load_config

        return load_config(self.car_path, list(self.overrides) + list(extra_overrides or []))


def merge_common(ctx: click.Context, car: str | None, overrides: tuple[str, ...], verbose: int) -> AppContext:
    app = ctx.ensure_object(AppContext)
    if car is not None:
        app.car_path = Path(car).expanduser()
    app.overrides.extend(overrides)
    app.verbose += verbose
    _setup_logging(app.verbose)
    return app


def shared_option_flags(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the click options ``--car``, ``--set`` and ``-v`` to ``function``."""
    function = click.option("-v", "--verbose", count=True, help="Log more detail; -vv for debug output.")(function)
    function = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                            help="Override one config value; may be given several times.")(function)
    function = click.option("--car", "car", type=click.Path(file_okay=False), default=None,
                            help="Car folder holding myconfig.yaml, data/ and models/ (default: current folder).")(function)
    return function


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--car``, ``--set`` and ``-v`` to a sub-command and pass the AppContext first."""

    @shared_option_flags
    @click.pass_context
    @functools.wraps(command)
    def wrapper(ctx: click.Context, car: str | None, overrides: tuple[str, ...], verbose: int, **kwargs: Any) -> Any:
        app = merge_common(ctx, car, overrides, verbose)
        return command(app, **kwargs)

    return wrapper


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose >= 2 else logging.INFO
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
            stream=sys.stderr,
        )
    root.setLevel(level)
    if verbose < 2:
        for noisy in ("tornado.access", "matplotlib", "PIL", "h5py", "absl"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


