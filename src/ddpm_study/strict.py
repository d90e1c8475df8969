"""A strict loader from plain mappings (parsed YAML) to frozen dataclasses.

An unknown key, a missing key, a value of the wrong type or an unknown choice raises
``ConfigError`` with one line naming the key, the bad value and what is allowed. Field types
understood: ``int``, ``float`` (finite), ``str``, ``bool``, ``Literal[...]``, ``tuple[X, ...]``
(a YAML list), ``dict[str, X]`` (a YAML mapping) and nested dataclasses. Range checks are the
dataclasses' own business (``require``).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal, get_args, get_origin

from .errors import ConfigError


def build(cls: type, raw: Any, prefix: str = "") -> Any:
    """The dataclass ``cls`` from the mapping ``raw``; ``prefix`` is the key path for messages."""
    where = prefix or "params"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{join(prefix, unknown[0])}: unknown key; valid keys in {where}: {', '.join(fields)}")
    missing = [f for f in fields if f not in raw]
    if missing:
        raise ConfigError(f"{join(prefix, missing[0])}: missing key; {where} needs: {', '.join(fields)}")
    return cls(**{f: _coerce(hints[f], raw[f], join(prefix, f)) for f in fields})


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: invalid value {value!r}; expected {allowed}")


def plain(obj: Any) -> Any:
    """Dataclasses, tuples and dicts as JSON-able dicts and lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    if get_origin(tp) is tuple:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if get_origin(tp) is dict:
        return f"a mapping of names to {_type_name(get_args(tp)[1])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: invalid value {value!r}; expected {_type_name(tp)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: invalid value {value!r}; expected {_type_name(tp)}")
        return tuple(_coerce(get_args(tp)[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(get_args(tp)[1], v, join(key, str(k))) for k, v in value.items()}
    ok = {
        # bool is an int in Python; a YAML `true` must not pass as a step count.
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        bool: isinstance(value, bool),
    }[tp]
    if not ok:
        raise ConfigError(f"{key}: invalid value {value!r}; expected {_type_name(tp)}")
    if tp is float:
        if not math.isfinite(value):
            raise ConfigError(f"{key}: invalid value {value!r}; expected a finite number")
        return float(value)
    return value
