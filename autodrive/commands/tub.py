"""`autodrive tub`: Inspect, clean and convert recorded tubs.

``command`` is a click group; other modules add sub-commands to it with
``command.add_command``.
"""

from __future__ import annotations

from pathlib import Path

import click

from autodrive.commands._common import common_options

TUB_PATH = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group(name="tub", help="Inspect, clean and convert recorded tubs.")
def command() -> None:
    """Group of the tub sub-commands."""


@command.command(name="info")
@click.argument("paths", nargs=-1, required=True, type=TUB_PATH)
@common_options
def info(app, paths: tuple[Path, ...]) -> None:
    """Show records, sessions, duration, frame rate, label histograms and problems of each tub."""
    from autodrive.tub import open_tub
    from autodrive.tub.tools import format_summary, summarize

    for number, path in enumerate(paths):
        if number:
            click.echo()
        click.echo(format_summary(summarize(open_tub(path))))


@command.command(name="delete")
@click.argument("path", type=TUB_PATH)
@click.argument("ranges")
@common_options
def delete(app, path: Path, ranges: str) -> None:
    """Mark records as deleted; RANGES is like 100:250,400 (100:250 is 100 to 249).

    Deleted records stay on disk and 'autodrive tub restore' brings them back.
    """
    from autodrive.tub import open_tub
    from autodrive.tub.tools import parse_ranges

    tub = open_tub(path)
    chosen = parse_ranges(ranges, end=max(tub.indexes, default=-1) + 1)
    added = tub.delete(chosen)
    click.echo(f"{path}: marked {len(added)} records deleted ({len(tub.deleted_indexes)} deleted in all, "
               f"{len(tub)} records left)")


@command.command(name="restore")
@click.argument("path", type=TUB_PATH)
@click.argument("ranges")
@common_options
def restore(app, path: Path, ranges: str) -> None:
    """Remove the deletion mark from records; RANGES is like 100:250,400."""
    from autodrive.tub import open_tub
    from autodrive.tub.tools import parse_ranges

    tub = open_tub(path)
    chosen = parse_ranges(ranges, end=max(tub.indexes, default=-1) + 1)
    removed = tub.restore(chosen)
    click.echo(f"{path}: restored {len(removed)} records ({len(tub)} records usable)")


@command.command(name="check")
@click.argument("path", type=TUB_PATH)
@click.option("--repair", is_flag=True,
              help="Rebuild the manifests from the catalogs and mark records with a missing or damaged image deleted.")
@common_options
def check(app, path: Path, repair: bool) -> None:
    """Read every record and image marker of a tub and list what is wrong.

    Exits 1 when something that --repair fixes is found: stale manifests, a
    truncated last line, or unusable records that are not marked deleted.
    """
    from autodrive.tub.tools import check_tub, needs_repair

    tub, changes = check_tub(path, repair)
    for change in changes:
        click.echo(f"repaired: {change}")
    for problem, count in sorted(tub.problems.items()):
        click.echo(f"{problem}: {count}")
    for index, reason in sorted(tub.unusable.items()):
        state = "deleted" if index in tub.deleted_indexes else "not deleted"
        click.echo(f"record {index}: {reason} ({state})")

    click.echo(f"{path}: {len(tub)} usable records")
    reasons = needs_repair(tub)
    if reasons:
        click.echo(f"{path}: needs repair ({'; '.join(reasons)}); run 'autodrive tub check --repair {path}'",
                   err=True)
        raise SystemExit(1)


@command.command(name="convert")
@click.argument("old", type=TUB_PATH)
@click.argument("new", type=click.Path(path_type=Path))
@common_options
def convert(app, old: Path, new: Path) -> None:
    """Convert an old-format tub (meta.json, record_N.json) into a new Tub v2 folder, copying JPEGs unchanged."""
    from autodrive.tub.tools import convert_tub

    report = convert_tub(old, new)
    click.echo(f"{new}: {report.converted} records converted, {report.deleted} marked deleted")
    for index, reason in sorted(report.skipped.items()):
        click.echo(f"skipped old record {index}: {reason}")


from autodrive.compare import compare_command  # noqa: E402  (sub-command defined beside its logic)

command.add_command(compare_command)
