"""The ``autodrive`` command: parses arguments and calls one function per sub-command.

Options common to every command (``--car``, ``--set``, ``-v``) are accepted
both before the sub-command and after it. Expected failures (a config error,
a missing library, a missing file) print one line and exit non-zero without
a traceback: 2 for bad configuration or usage, 1 for everything else.
"""

from __future__ import annotations

import logging
import sys

import click

from autodrive import __version__
from autodrive.commands._common import AppContext, common_options, merge_common, shared_option_flags
from autodrive.errors import AutodriveError, ConfigError

__all__ = ["AppContext", "cli", "common_options", "main"]

log = logging.getLogger(__name__)

EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="autodrive")
@shared_option_flags
@click.pass_context
def cli(ctx: click.Context, car: str | None, overrides: tuple[str, ...], verbose: int) -> None:
    """Drive, record, train and simulate small self-driving RC cars.

    Typical use: `autodrive createcar ~/mycar`, then in that folder
    `autodrive drive` and open the printed URL on a phone.
    """
    merge_common(ctx, car, overrides, verbose)


def _register_commands() -> None:
    # Each sub-command lives in autodrive/commands/; those modules import
    # heavy libraries (TensorFlow, OpenCV) only inside the command functions.
    from autodrive.commands import calibrate, createcar, drive, models, sim, sync, train, tub

    for module in (createcar, drive, train, sync, calibrate, tub, sim, models):
        cli.add_command(module.command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Run the command line and exit with its status."""
    try:
        status = cli.main(args=argv, prog_name="autodrive", standalone_mode=False)
    except click.exceptions.Exit as done:
        status = done.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        status = 1
    except click.ClickException as error:
        error.show()
        status = error.exit_code
    except ConfigError as error:
        click.echo(f"autodrive: config error: {error}", err=True)
        status = EXIT_USAGE
    except AutodriveError as error:
        click.echo(f"autodrive: {error}", err=True)
        status = 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        status = 130
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
