"""Stage `prepare`: the official data set files -> uint8 arrays in data/prepared."""

from __future__ import annotations

from pathlib import Path

from ddpm_study import data
from ddpm_study.config import StudyConfig

from .. import outputs, tracking
from ..console import console


def run(cfg: StudyConfig, params: Path) -> None:
    splits = data.locate_and_load(cfg.data.dataset, outputs.RAW_DIR, cfg.data.source_dir, cfg.data.download)
    info = outputs.write_prepared(splits, cfg.data.dataset)
    console.print(f"prepared {info.dataset} from {splits.source}: train {info.train_images}, test {info.test_images}",
                  soft_wrap=True)
    tracking.tag_execution(cfg, {"data_source": splits.source})
