"""Configuration: defaults, the car's myconfig.yaml, command-line overrides.

``config/default.yaml`` is both the list of defaults and the schema: the
comment after each key starts with the allowed values (see the header of that
file for the forms). A car's ``myconfig.yaml`` and ``--set section.key=value``
override the defaults, and every value is checked against the schema when it
is loaded, so a typo fails at start-up with the file and key named.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from autodrive.errors import ConfigError
from autodrive.resources import config_dir

log = logging.getLogger(__name__)

CAR_CONFIG_NAME = "myconfig.yaml"

_KEY_LINE = re.compile(r"^  (?P<key>[a-z_][a-z0-9_]*):\s*(?P<value>[^#]*?)\s*#\s*(?P<comment>.*)$")
_SECTION_LINE = re.compile(r"^(?P<section>[a-z_][a-z0-9_]*):\s*(#.*)?$")
_RANGE = re.compile(r"^(?P<low>-?[0-9.]+)\.\.(?P<high>-?[0-9.]+)?(?:\s+(?P<unit>\S.*))?$")


@dataclass(frozen=True)
class KeySpec:
    """Allowed values of one key, parsed from its comment in default.yaml."""

    name: str
    kind: str  # "number", "choice", "bool", "text", "list"
    default: Any
    description: str
    nullable: bool = False
    integer: bool = False
    low: float | None = None
    high: float | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()
    item_kind: str = ""

    def describe(self) -> str:
        """Return the allowed values in words, for error messages."""
        if self.kind == "number":
            noun = "a whole number" if self.integer else "a number"
            if self.high is None:
                text = f"{noun} of at least {_format_number(self.low)}"
            else:
                text = f"{noun} from {_format_number(self.low)} to {_format_number(self.high)}"
            if self.unit:
                text += f" ({self.unit})"
        elif self.kind == "choice":
            text = "one of " + ", ".join(self.choices)
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "list":
            text = f"a list of {self.item_kind}"
        else:
            text = "text"
        if self.nullable:
            text += " or null"
        return text


def _format_number(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return repr(value)


def _parse_spec(name: str, default: Any, comment: str) -> KeySpec:
    """Parse the schema part of a default.yaml comment into a KeySpec."""
    parts = re.split(r"(?<!\.)\.\s", comment + " ", maxsplit=1)
    spec = parts[0].strip()
    description = parts[1].strip() if len(parts) > 1 else ""

    nullable = False
    if spec.endswith(" or null"):
        nullable = True
        spec = spec[: -len(" or null")]

    if spec.startswith("one of "):
        choices = tuple(word.strip() for word in spec[len("one of "):].split(","))
        return KeySpec(name, "choice", default, description, nullable, choices=choices)
    if spec == "true or false":
        return KeySpec(name, "bool", default, description, nullable)
    if spec == "text":
        return KeySpec(name, "text", default, description, nullable)
    if spec.startswith("list of "):
        item_kind = spec[len("list of "):]
        if item_kind not in ("text", "numbers"):
            raise RuntimeError(f"default.yaml: {name} has unknown list type {item_kind!r}")
        return KeySpec(name, "list", default, description, nullable, item_kind=item_kind)

    match = _RANGE.match(spec)
    if match is None:
        raise RuntimeError(f"default.yaml: cannot read the allowed values of {name} from {comment!r}")
    low_text, high_text = match["low"], match["high"]
    integer = (
        not isinstance(default, float)
        and "." not in low_text
        and (high_text is None or "." not in high_text)
    )
    return KeySpec(
        name,
        "number",
        default,
        description,
        nullable,
        integer=integer,
        low=float(low_text),
        high=float(high_text) if high_text is not None else None,
        unit=(match["unit"] or "").strip(),
    )


def load_schema(path: Path | None = None) -> dict[str, KeySpec]:
    """Read default.yaml into a map from "section.key" to its KeySpec."""
    path = path or config_dir() / "default.yaml"
    text = path.read_text(encoding="utf-8")
    defaults = yaml.safe_load(text)
    schema: dict[str, KeySpec] = {}
    section = None

    for line in text.splitlines():
        section_match = _SECTION_LINE.match(line)
        if section_match:
            section = section_match["section"]
            continue
        key_match = _KEY_LINE.match(line)
        if key_match and section is not None:
            name = f"{section}.{key_match['key']}"
            default = defaults[section][key_match["key"]]
            schema[name] = _parse_spec(name, default, key_match["comment"])

    for section_name, keys in defaults.items():
        for key in keys:
            if f"{section_name}.{key}" not in schema:
                raise RuntimeError(f"default.yaml: {section_name}.{key} has no schema comment")
    return schema


_SCHEMA_CACHE: dict[str, KeySpec] | None = None


def schema() -> dict[str, KeySpec]:
    """Return the schema of the installed default.yaml, read once."""
    global _SCHEMA_CACHE
    if _SCHEMA_CACHE is None:
        _SCHEMA_CACHE = load_schema()
    return _SCHEMA_CACHE


def check_value(spec: KeySpec, value: Any, source: str) -> Any:
    """Return ``value`` converted to the key's type, or raise ConfigError.

    Integers are accepted where floats are expected; a float is accepted for a
    whole-number key only when it has no fractional part.
    """
    if value is None:
        if spec.nullable:
            return None
        raise ConfigError(f"{source}: {spec.name} must be {spec.describe()}, got null")

    if spec.kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if ok and spec.integer and isinstance(value, float):
            ok = value.is_integer()
            value = int(value) if ok else value
        if ok and (value < spec.low or (spec.high is not None and value > spec.high)):
            ok = False
        if not ok:
            raise ConfigError(f"{source}: {spec.name} must be {spec.describe()}, got {value!r}")
        return value if spec.integer else float(value)

    if spec.kind == "choice":
        if value not in spec.choices:
            hint = _closest(str(value), spec.choices)
            raise ConfigError(f"{source}: {spec.name} must be {spec.describe()}, got {value!r}{hint}")
        return value

    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {spec.name} must be true or false, got {value!r}")
        return value

    if spec.kind == "list":
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {spec.name} must be {spec.describe()}, got {value!r}")
        for item in value:
            is_number = isinstance(item, (int, float)) and not isinstance(item, bool)
            if (spec.item_kind == "numbers" and not is_number) or (
                spec.item_kind == "text" and not isinstance(item, str)
            ):
                raise ConfigError(f"{source}: {spec.name} must be {spec.describe()}, got item {item!r}")
        return list(value)

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {spec.name} must be text, got {value!r}")
    return value


def _closest(word: str, candidates: Iterable[str]) -> str:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


class Section:
    """The keys of one config section, read as attributes: ``cfg.drive.loop_hz``."""

    def __init__(self, name: str, values: dict[str, Any]):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", values)

    def __getattr__(self, key: str) -> Any:
        values = object.__getattribute__(self, "_values")
        try:
            return values[key]
        except KeyError:
            name = object.__getattribute__(self, "_name")
            raise AttributeError(f"config has no key {name}.{key}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("config values are read-only; use Config.with_overrides")

    def as_dict(self) -> dict[str, Any]:
        return dict(object.__getattribute__(self, "_values"))

    def __repr__(self) -> str:
        return f"Section({object.__getattribute__(self, '_name')!r}, {self.as_dict()!r})"


@dataclass
class Config:
    """A checked configuration, plus where each value came from."""

    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    car_path: Path = field(default_factory=Path.cwd)

    def __getattr__(self, section: str) -> Section:
        if section.startswith("_") or section in ("values", "sources", "car_path"):
            raise AttributeError(section)
        prefix = section + "."
        keys = {name[len(prefix):]: value for name, value in self.values.items() if name.startswith(prefix)}
        if not keys:
            raise AttributeError(f"config has no section {section!r}")
        return Section(section, keys)

    def get(self, name: str) -> Any:
        """Return the value of ``section.key``."""
        return self.values[name]

    def with_overrides(self, overrides: dict[str, Any], source: str = "override") -> "Config":
        """Return a copy with ``overrides`` (``section.key`` to value) checked and applied."""
        values = dict(self.values)
        sources = dict(self.sources)
        _apply(values, sources, overrides, source)
        _check_combinations(values, sources)
        return Config(values, sources, self.car_path)

    def car_file(self, relative: str | Path) -> Path:
        """Resolve a path from the config against the car folder."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.car_path / path


def _apply(values: dict[str, Any], sources: dict[str, str], overrides: dict[str, Any], source: str) -> None:
    known = schema()
    for name, value in overrides.items():
        spec = known.get(name)
        if spec is None:
            raise ConfigError(f"{source}: unknown key {name!r}{_closest(name, known)}")
        values[name] = check_value(spec, value, source)
        sources[name] = source


def _flatten(data: Any, source: str) -> dict[str, Any]:
    """Turn ``{section: {key: value}}`` into ``{"section.key": value}``."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected sections of 'key: value' lines, found {type(data).__name__}")
    sections = {name.split(".")[0] for name in schema()}
    flat = {}
    for section, keys in data.items():
        if keys is None and section in sections:
            continue
        if not isinstance(keys, dict):
            if section in sections:
                raise ConfigError(f"{source}: section {section!r} must contain 'key: value' lines, got {keys!r}")
            owners = sorted(name for name in schema() if name.split(".")[1] == section)
            if owners:
                raise ConfigError(
                    f"{source}: unknown section {section!r}; {section!r} is a key of "
                    f"{' and '.join(name.split('.')[0] for name in owners)}, so indent it under that section "
                    f"(for example '{owners[0].split('.')[0]}:' then '  {section}: ...')"
                )
            raise ConfigError(f"{source}: unknown section {section!r}{_closest(str(section), sections)}")
        for key, value in keys.items():
            flat[f"{section}.{key}"] = value
    return flat


def read_yaml_file(path: Path) -> dict[str, Any]:
    """Read a config file into ``section.key`` pairs, with YAML errors named by line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}; check the indentation and the ':' after each key") from None
    return _flatten(data, path.name)


def parse_set_option(text: str) -> tuple[str, Any]:
    """Parse one ``--set section.key=value``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected section.key=value, for example --set drive.loop_hz=30")
    name, raw = text.split("=", 1)
    name = name.strip()
    if "." not in name:
        raise ConfigError(f"--set {text}: the key must be section.key, for example drive.loop_hz")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return name, value


def _check_combinations(values: dict[str, Any], sources: dict[str, str]) -> None:
    """Check rules that involve more than one key."""

    def where(*names: str) -> str:
        files = sorted({sources.get(name, "default.yaml") for name in names})
        return ", ".join(files)

    left, right = values["steering.left_us"], values["steering.right_us"]
    if left == right:
        raise ConfigError(
            f"{where('steering.left_us', 'steering.right_us')}: steering.left_us and steering.right_us "
            f"are both {left} µs, so the servo could not turn; run 'autodrive calibrate'"
        )
    center = values["steering.center_us"]
    if not min(left, right) <= center <= max(left, right):
        raise ConfigError(
            f"{where('steering.center_us')}: steering.center_us = {center} µs is not between "
            f"steering.left_us ({left}) and steering.right_us ({right}); run 'autodrive calibrate'"
        )
    reverse, neutral, forward = (
        values["throttle.reverse_us"],
        values["throttle.neutral_us"],
        values["throttle.forward_us"],
    )
    if forward == neutral:
        raise ConfigError(
            f"{where('throttle.forward_us', 'throttle.neutral_us')}: throttle.forward_us equals "
            f"throttle.neutral_us ({neutral} µs), so the car could not move; run 'autodrive calibrate'"
        )
    if not min(reverse, forward) <= neutral <= max(reverse, forward):
        raise ConfigError(
            f"{where('throttle.neutral_us')}: throttle.neutral_us = {neutral} µs is not between "
            f"throttle.reverse_us ({reverse}) and throttle.forward_us ({forward}); run 'autodrive calibrate'"
        )
    crop = values["training.crop_top"] + values["training.crop_bottom"]
    if crop >= values["camera.height"]:
        raise ConfigError(
            f"{where('training.crop_top', 'training.crop_bottom')}: training.crop_top + training.crop_bottom "
            f"= {crop} px leaves no rows of the {values['camera.height']} px camera frame"
        )


def load_config(car_path: Path | str | None = None, overrides: Iterable[str] = ()) -> Config:
    """Load defaults, then ``CAR/myconfig.yaml`` if present, then ``--set`` overrides.

    Raises ConfigError with the file and key named on any invalid value.
    """
    car = Path(car_path) if car_path is not None else Path.cwd()
    values = {name: spec.default for name, spec in schema().items()}
    sources = {name: "default.yaml" for name in values}

    car_file = car / CAR_CONFIG_NAME
    if car_file.is_file():
        _apply(values, sources, read_yaml_file(car_file), CAR_CONFIG_NAME)

    for text in overrides:
        name, value = parse_set_option(text)
        _apply(values, sources, {name: value}, f"--set {text}")

    _check_combinations(values, sources)
    log.debug("config loaded from %s", car_file if car_file.is_file() else "defaults only")
    return Config(values, sources, car.resolve())


def default_config(**overrides: Any) -> Config:
    """Return the defaults with ``section__key=value`` overrides, for tests and scripts."""
    values = {name: spec.default for name, spec in schema().items()}
    sources = {name: "default.yaml" for name in values}
    flat = {name.replace("__", "."): value for name, value in overrides.items()}
    _apply(values, sources, flat, "override")
    _check_combinations(values, sources)
    return Config(values, sources, Path.cwd())
