"""The ``extended`` section of ``params.yaml``, validated against the study it extends.

Imported only by the extended study's stages and the `check` gate: were it in the CLI's own imports,
``ddpm_study.extended`` would join every stage's code, the training code fingerprint included.
"""

from __future__ import annotations

from pathlib import Path

from ddpm_study.errors import ConfigError
from ddpm_study.extended import ExtendedConfig

from . import params


def load(path: Path, gate: bool = False) -> ExtendedConfig:
    """Validated on its own; unless ``gate``, also against the study it runs on (``ExtendedConfig.require_runnable``)."""
    raw = params.parse(path)
    study = params.load(path)
    if params.EXTENDED not in raw:
        raise ConfigError(f"{params.EXTENDED}: missing key; params needs the study's sections and "
                          f"{params.EXTENDED} (seeds, longer, cross)")
    with params.unrecorded():  # validation against the study, not a dependency
        ext = ExtendedConfig.from_dict(raw[params.EXTENDED], study)
        if not gate:
            ext.require_runnable(study)
    return params.track(ext, f"{params.EXTENDED}.")
