"""Load ``params.yaml`` into the typed, validated study configuration (and the extended study's)."""

from __future__ import annotations

import dataclasses
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ddpm_study.config import StudyConfig
from ddpm_study.errors import ConfigError

from .outputs import PARAMS

# The tracking URI schemes MLflow has a store for (its SQLAlchemy databases, a tracking server, Databricks,
# a local folder). Checked here, at the gate, because MLflow itself only fails when the first run is opened.
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "file")

# The section only the extended study reads (``extended_params``; kept out of every main stage's code,
# so that the training code fingerprint does not cover the extended study's configuration).
EXTENDED = "extended"


def parse(path: Path) -> Any:
    """Parsed as YAML 1.2 by ruamel.yaml, the library DVC writes ``-S`` values with: it writes
    ``-S train.lr=0.00005`` as ``5e-05``, which a YAML 1.1 reader (PyYAML) would take for a string."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found (run from the project root)")
    try:
        return YAML(typ="safe", pure=True).load(path.read_text())
    except YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None


def _study(raw: Any) -> StudyConfig:
    cfg = StudyConfig.from_dict({k: v for k, v in raw.items() if k != EXTENDED} if isinstance(raw, dict) else raw)
    check_tracking_uri(cfg.tracking.uri, "tracking.uri")
    return cfg


def check_tracking_uri(uri: str, key: str) -> None:
    """``uri``: "" (the default store), a folder path, or ``<scheme>:...`` with a scheme of ``TRACKING_SCHEMES``
    (``postgresql+psycopg://`` and the like: a SQLAlchemy dialect with its driver)."""
    scheme, colon, _ = uri.partition(":")
    if not colon or len(scheme) == 1:  # "" or a plain path (a Windows drive letter too): a local folder store
        return
    if scheme.split("+")[0].lower() not in TRACKING_SCHEMES:
        raise ConfigError(f"{key}: invalid value {uri!r}: MLflow has no tracking store for scheme {scheme!r}; expected \"\" "
                          f"(sqlite:///<project root>/mlflow.db), a folder path, or one of "
                          f"{', '.join(s + ':' for s in TRACKING_SCHEMES)}")


def load(path: Path = PARAMS) -> StudyConfig:
    """Parse and validate; a bad key or value raises ConfigError naming it, before any work starts."""
    return track(_study(parse(path)))


# --- Which parameters a stage reads -----------------------------------------------------------------
# With $DDPM_STUDY_PARAMS_READ naming a folder, every stage process records the parameter keys its code
# reads (attribute access on the typed configuration, after validation) into <folder>/<stage>.json,
# added to what earlier runs recorded; tests/test_params_coverage.py compares them with each stage's
# `params:` in dvc.yaml. Reads that decide no output are left out (``unrecorded``): validation, and the
# lineage dicts that name MLflow runs or check that a loaded checkpoint is current.
READ_ENV = "DDPM_STUDY_PARAMS_READ"
_read: set[str] | None = None  # the keys read so far, while recording
_tracked: dict[int, tuple[str, Any]] = {}  # id of a loaded config object -> its key prefix ("train."), the object
_paused = 0


def _record(obj: Any, name: str, value: Any) -> None:
    prefix, _ = _tracked.get(id(obj), (None, None))
    if prefix is not None and not _paused and not dataclasses.is_dataclass(value):
        _read.add(prefix + name)


def _recording_getattribute(self, name: str) -> Any:
    value = object.__getattribute__(self, name)
    if _read is not None and name in type(self).__dataclass_fields__:
        _record(self, name, value)
    return value


def track(cfg: Any, prefix: str = "") -> Any:
    """While recording, make reads of ``cfg``'s fields (and its sections') count as reads of ``prefix<key>``."""
    if _read is not None and dataclasses.is_dataclass(cfg):
        type(cfg).__getattribute__ = _recording_getattribute
        _tracked[id(cfg)] = (prefix, cfg)  # kept alive, so that its id stays its own
        with unrecorded():
            for field in dataclasses.fields(cfg):
                track(getattr(cfg, field.name), f"{prefix}{field.name}.")
    return cfg


def note_read(lineage: dict[str, Any]) -> None:
    """Record the keys of a lineage dict (``pipeline.lineage``) as read: what it holds is what an output (a
    checkpoint's fingerprint) depends on, while building it reads every key (``StudyConfig.to_dict``)."""
    if _read is None or _paused:
        return
    for key, value in lineage.items():
        if isinstance(value, dict) and key != "schedules":  # the `schedules` section is listed whole
            _read.update(f"{key}.{sub}" for sub in value)
        elif key not in ("code", "schedule"):  # the code fingerprint; the name of the schedule trained (not `schedule`)
            _read.add(key)


@contextmanager
def unrecorded() -> Iterator[None]:
    """Reads inside are not the stage's dependencies (validation, MLflow run names, staleness checks)."""
    global _paused
    _paused += 1
    try:
        yield
    finally:
        _paused -= 1


@contextmanager
def recording(stage: str) -> Iterator[None]:
    """Record the keys read inside into ``$DDPM_STUDY_PARAMS_READ/<stage>.json`` (nothing if it is unset)."""
    global _read
    folder = os.environ.get(READ_ENV)
    if not folder:
        yield
        return
    _read = set()
    try:
        yield
    finally:
        path = Path(folder) / f"{stage}.json"
        before = set(json.loads(path.read_text())) if path.is_file() else set()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(sorted(before | _read)))
        _read = None
        _tracked.clear()
