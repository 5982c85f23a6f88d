"""`autodrive createcar PATH`: make a car folder with a commented myconfig.yaml."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from autodrive.config import CAR_CONFIG_NAME
from autodrive.errors import AutodriveError
from autodrive.resources import config_dir

log = logging.getLogger(__name__)

CAR_FOLDERS = ("data", "models", "logs")


def commented_config() -> str:
    """Return default.yaml with every key commented out, as a car's starting myconfig.yaml."""
    lines = [
        "# Car configuration. To override a default, delete the '# ' before a key",
        "# (keep the key indented under its section) and change its value. Every",
        "# key is listed below with its allowed values.",
        "",
    ]
    for line in (config_dir() / "default.yaml").read_text(encoding="utf-8").splitlines():
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        if line.startswith(" "):
            # Keys are commented out but keep their indentation, so deleting
            # "# " leaves the key correctly placed under its section.
            lines.append("  # " + line.strip())
        else:
            lines.append("")
            lines.append(line)
    return "\n".join(lines) + "\n"


def create_car(path: Path, force: bool = False) -> Path:
    """Create the car folder at ``path``; refuse to overwrite one unless ``force``."""
    path = path.expanduser()
    config_file = path / CAR_CONFIG_NAME
    if config_file.exists() and not force:
        raise AutodriveError(f"{path} is already a car folder ({CAR_CONFIG_NAME} exists); use --force to overwrite its {CAR_CONFIG_NAME}")
    if path.exists() and not path.is_dir():
        raise AutodriveError(f"{path} exists and is not a folder; choose another path")

    path.mkdir(parents=True, exist_ok=True)
    for folder in CAR_FOLDERS:
        (path / folder).mkdir(exist_ok=True)
    config_file.write_text(commented_config(), encoding="utf-8")
    log.info("created car folder %s", path)
    return path


@click.command(name="createcar")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite myconfig.yaml of an existing car folder (data is kept).")
def command(path: Path, force: bool) -> None:
    """Create a car folder at PATH with myconfig.yaml, data/, models/ and logs/."""
    create_car(path, force)
    click.echo(f"Car folder ready: {path}")
    click.echo(f"Next: cd {path} && autodrive drive")
