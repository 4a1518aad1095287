"""Configuration: `conf/base.yaml` plus one overlay per environment, validated into frozen objects.

Loading order: `base.yaml`, then `<env>.yaml` merged on top (mappings merge key by key, everything else
is replaced). `${VAR}` is replaced by the environment variable VAR (an error when it is not set);
`${VAR:-default}` falls back to `default`. Unknown keys, wrong types and missing variables raise
`ConfigError` naming the file and the dotted key.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdp.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LakeConfig(_Section):
    root: str = "./lakehouse"
    engine: Literal["auto", "delta-rs", "delta-spark"] = "auto"
    # Files no longer referenced by a table are kept this long before `maintain` deletes them,
    # so that readers of older versions and in-flight writers are never broken.
    vacuum_retention_hours: int = 168


class SparkConfig(_Section):
    master: str | None = None
    remote: str | None = None
    app_name: str = "cdp-lakehouse"
    conf: Mapping[str, str] = Field(default_factory=lambda: MappingProxyType({}))

    @field_validator("conf", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): _conf_value(v) for k, v in value.items()}
        return value

    @field_validator("conf", mode="after")
    @classmethod
    def _freeze(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        return MappingProxyType(dict(value))

    @field_validator("master", "remote", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class LoggingConfig(_Section):
    dir: str = "./logs"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class CleansingConfig(_Section):
    # Values that are typed to get past a form; they identify nobody. Compared after standardising.
    placeholder_mobiles: tuple[str, ...] = ()
    placeholder_emails: tuple[str, ...] = ()
    placeholder_ids: tuple[str, ...] = ()
    # Event times before this date are implausible (quarantined); after the run date, too.
    earliest_event: dt.date = dt.date(2000, 1, 1)
    # Share of a batch's rows that may be quarantined before the batch fails as a whole.
    max_quarantine_share: float = Field(default=0.2, ge=0, le=1)


class IdentifierTypeConfig(_Section):
    """How one identifier type takes part in identity resolution."""

    link: bool = True  # False: kept as an attribute, never joins records
    priority: int = Field(default=0, ge=0)  # stronger types hold weaker ones (caps); higher is stronger
    blocklist: tuple[str, ...] = ()  # values that identify nobody, compared after standardising
    block_patterns: tuple[str, ...] = ()  # Java regular expressions matched against the whole value
    block_from: tuple[str, ...] = ()  # "<table>:<column>": every value of a reference column (store phones)
    max_records: int | None = Field(default=None, ge=1)  # hub: a value on more records is removed
    max_names: int | None = Field(default=None, ge=1)  # hub: a value on records with more distinct names
    max_holders: int | None = Field(default=None, ge=1)  # hub: a value seen with more values of stronger types
    max_per_holder: int | None = Field(default=None, ge=1)  # cap per value of a stronger type

    @field_validator("block_from", mode="after")
    @classmethod
    def _table_columns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            table, _, column = entry.partition(":")
            if "." not in table or not column:
                raise ValueError(f"'{entry}' is not <layer>.<table>:<column>, e.g. silver.stores:phone")
        return value


class IdentityGates(_Section):
    """Limits that stop the identity job before it replaces `identity.oneid_map`."""

    max_component_records: int = Field(default=20_000, ge=1)
    large_component_records: int = Field(default=200, ge=1)
    max_share_in_large: float = Field(default=0.02, ge=0, le=1)


class IdentityConfig(_Section):
    engine: Literal["auto", "builtin", "graphframes"] = "auto"
    driver_threshold: int = Field(default=2_000_000, ge=0)  # builtin finishes on the driver below this; 0: never
    mall_appid: str = ""  # the WeChat app of the own mall: scope of the openids on its orders
    types: Mapping[str, IdentifierTypeConfig] = Field(default_factory=lambda: MappingProxyType({}))
    gates: IdentityGates = Field(default_factory=IdentityGates)

    @field_validator("types", mode="after")
    @classmethod
    def _freeze_types(cls, value: Mapping[str, IdentifierTypeConfig]) -> Mapping[str, IdentifierTypeConfig]:
        return MappingProxyType(dict(value))


class TagsConfig(_Section):
    # The tag catalogue folder; relative paths are taken from the configuration folder (default: tags).
    catalogue: str = "tags"
    # `maintain` drops the as-of dates of tags.customer_tags and tags.customer_profile older than
    # this many days before the newest one (None: keeps every date); with `keep_month_starts`, the
    # first day of each month stays (the state at each month's end, for training sets).
    keep_days: int | None = Field(default=None, ge=0)
    keep_month_starts: bool = True
    # The business's time zone (an IANA region): where its days begin. `--as-of D` sees the facts
    # before D's midnight there, a window of N days starts N midnights earlier, and the catalogue's
    # expressions read dates and hours of timestamps there (`to_date(ts)`, `hour(ts)`).
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone", mode="after")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone region (such as Asia/Shanghai or UTC)") from None
        return value


class Config(_Section):
    env: str
    lake: LakeConfig = Field(default_factory=LakeConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    cleansing: CleansingConfig = Field(default_factory=CleansingConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    tags: TagsConfig = Field(default_factory=TagsConfig)


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class _Layer:
    path: Path
    data: dict[str, Any]


def default_conf_dir() -> Path:
    """`CDP_CONF_DIR`, else the repository's `conf/` (next to `lib/`), else `./conf`."""
    if env_dir := os.environ.get("CDP_CONF_DIR"):
        return Path(env_dir)
    repo_conf = Path(__file__).resolve().parents[2] / "conf"
    return repo_conf if repo_conf.is_dir() else Path("conf")


def load_config(
    env: str = "local",
    *,
    conf_dir: str | Path | None = None,
    lake_root: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load and validate the configuration for one environment.

    Args:
        env: overlay to apply on top of `base.yaml` (`conf/<env>.yaml`, which must exist).
        conf_dir: folder holding the YAML files; defaults to `default_conf_dir()`.
        lake_root: overrides `lake.root` (the CLI's `--lake`); else `CDP_LAKE` overrides it.
        environ: variables for `${VAR}` expansion; defaults to `os.environ`.

    Returns:
        The frozen `Config`, with `lake.root` made absolute when it is a local path.
    """
    environ = os.environ if environ is None else environ
    folder = Path(conf_dir) if conf_dir is not None else default_conf_dir()
    base_path, overlay_path = folder / "base.yaml", folder / f"{env}.yaml"
    if not overlay_path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"{overlay_path}: no such environment overlay '{env}' (known: {', '.join(known)})")
    layers = [_read_layer(base_path, environ), _read_layer(overlay_path, environ)]

    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], Path] = {}
    for layer in layers:
        _merge(merged, layer.data, (), layer.path, origin)
    merged["env"] = env
    root_override = lake_root or environ.get("CDP_LAKE")
    if root_override:
        merged.setdefault("lake", {})["root"] = root_override

    try:
        cfg = Config.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(_describe(e, origin, base_path)) from e
    catalogue = Path(cfg.tags.catalogue).expanduser()
    catalogue = catalogue if catalogue.is_absolute() else (folder / catalogue).resolve()
    return cfg.model_copy(
        update={
            "lake": cfg.lake.model_copy(update={"root": _absolute(cfg.lake.root)}),
            "tags": cfg.tags.model_copy(update={"catalogue": str(catalogue)}),
        }
    )


def _read_layer(path: Path, environ: Mapping[str, str]) -> _Layer:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: configuration file not found") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return _Layer(path, _expand(raw, (), path, environ))


def _expand(value: Any, key: tuple[str, ...], path: Path, environ: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, (*key, str(k)), path, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*key, str(i)), path, environ) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: key '{'.'.join(key)}' uses ${{{name}}}, which is not set")

    return _VAR.sub(substitute, value)


def _merge(into: dict[str, Any], new: dict[str, Any], key: tuple[str, ...], path: Path, origin: dict) -> None:
    for k, v in new.items():
        sub = (*key, str(k))
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v, sub, path, origin)
        else:
            into[k] = v
        origin[sub] = path


def _describe(error: ValidationError, origin: dict[tuple[str, ...], Path], fallback: Path) -> str:
    lines = []
    for item in error.errors():
        key = tuple(str(p) for p in item["loc"])
        where = next((origin[key[:n]] for n in range(len(key), 0, -1) if key[:n] in origin), fallback)
        what = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{where}: key '{'.'.join(key)}': {what}")
    return "; ".join(lines)


def _absolute(root: str) -> str:
    if "://" in root:
        return root.rstrip("/")
    return str(Path(root).expanduser().resolve())
