"""Load ``params.yaml`` into the typed, validated study configuration."""

from __future__ import annotations

from pathlib import Path

import yaml

from ddpm_study.config import ConfigError, StudyConfig

from . import paths


def load(path: Path = paths.PARAMS) -> StudyConfig:
    """Parse and validate; a bad key or value raises ConfigError naming it, before any work starts."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found (run from the project root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    return StudyConfig.from_dict(raw)
