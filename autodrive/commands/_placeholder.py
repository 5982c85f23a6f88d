"""A sub-command that is named in the CLI but not built yet."""

import click

from autodrive.commands._common import AppContext, common_options
from autodrive.errors import NotAvailableError


def placeholder(name: str, summary: str) -> click.Command:
    """Return a command that checks the config, then exits non-zero saying it is not available yet."""

    @click.command(
        name=name,
        help=f"{summary} (not available yet in this version).",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @common_options
    def command(app: AppContext, args: tuple[str, ...]) -> None:
        app.config()
        raise NotAvailableError(f"'autodrive {name}' is not available yet in this version")

    return command
