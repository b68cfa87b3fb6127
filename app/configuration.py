"""Reading the settings: PAYMENTS_* environment variables over an optional YAML file, over the defaults."""

from __future__ import annotations

import math
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from app.settings import Settings, SettingsError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from `500ms`, `30s`, `2m`, `24h`, `1d` or a bare number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError("expected a duration such as 500ms, 30s, 2m or 24h")
    return float(match.group(1)) * _UNITS[match.group(2)]



def _convert(key: str, value: object, field: attrs.Attribute[Any], hint: Any) -> object:
    try:
        if field.metadata.get("duration"):
            return parse_duration(value)
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in {"1", "true", "yes", "on"}:
                return True
            if str(value).lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError("expected true or false")
        if hint is int:
            number = int(str(value), 10)
            if number < 0:
                raise ValueError("must not be negative")
            return number
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            real = float(str(value))
            if not math.isfinite(real):
                raise ValueError("expected a finite number")
            return real
        if hint is str:
            if not isinstance(value, (str, int, float)):
                raise ValueError("expected a string")
            return str(value).lower() if key.endswith(("_LOG_LEVEL", "_LOG_FORMAT")) else str(value)
    except ValueError as error:
        raise SettingsError(f"{key}: {error} (got {value!r})") from None
    raise SettingsError(f"{key}: unsupported type")


def _build(cls: type[Any], prefix: str, env: Mapping[str, str], yaml_data: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in attrs.fields(cls):
        key = f"{prefix}_{field.name.upper()}"
        hint = hints[field.name]
        if attrs.has(hint):
            section = yaml_data.get(field.name) or {}
            if not isinstance(section, dict):
                raise SettingsError(f"{key}: expected a mapping in the YAML file")
            values[field.name] = _build(hint, key, env, section)
        elif key in env or field.name in yaml_data:
            value = _convert(key, env[key] if key in env else yaml_data[field.name], field, hint)
            if field.validator is not None:
                try:
                    field.validator(None, field, value)
                except (TypeError, ValueError) as error:  # attrs puts its message first in args
                    raise SettingsError(f"{key}: {error.args[0] if error.args else error}") from None
            values[field.name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise SettingsError(f"{prefix}: {error}") from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, over the YAML file named by PAYMENTS_CONFIG, over defaults."""
    env = os.environ if env is None else env
    yaml_data: dict[str, Any] = {}
    if path := env.get("PAYMENTS_CONFIG"):
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise SettingsError(f"PAYMENTS_CONFIG: cannot read {path}: {error}") from None
        if not isinstance(loaded, dict):
            raise SettingsError("PAYMENTS_CONFIG: the YAML file must hold a mapping")
        yaml_data = loaded
    settings: Settings = _build(Settings, "PAYMENTS", env, yaml_data)
    return settings
