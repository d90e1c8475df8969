"""Load ``params.yaml`` into the typed, validated study configuration (and the extended study's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ddpm_study.config import StudyConfig
from ddpm_study.errors import ConfigError

from .outputs import PARAMS

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
    return StudyConfig.from_dict({k: v for k, v in raw.items() if k != EXTENDED} if isinstance(raw, dict) else raw)


def load(path: Path = PARAMS) -> StudyConfig:
    """Parse and validate; a bad key or value raises ConfigError naming it, before any work starts."""
    return _study(parse(path))
