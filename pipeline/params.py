"""Load ``params.yaml`` into the typed, validated study configuration."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ddpm_study.config import StudyConfig
from ddpm_study.errors import ConfigError

from .outputs import PARAMS


def load(path: Path = PARAMS) -> StudyConfig:
    """Parse and validate; a bad key or value raises ConfigError naming it, before any work starts.

    Parsed as YAML 1.2 by ruamel.yaml, the library DVC writes ``-S`` values with: it writes
    ``-S train.lr=0.00005`` as ``5e-05``, which a YAML 1.1 reader (PyYAML) would take for a string.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: file not found (run from the project root)")
    try:
        raw = YAML(typ="safe", pure=True).load(path.read_text())
    except YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    return StudyConfig.from_dict(raw)
