"""Stage `prepare`: the official data set files, or a folder of images, -> uint8 arrays in data/prepared."""

from __future__ import annotations

from pathlib import Path

from ddpm_study import data
from ddpm_study.config import StudyConfig
from ddpm_study.errors import ConfigError, DataError

from .. import outputs, tracking
from ..console import console


def run(cfg: StudyConfig, params: Path) -> None:
    # The two real FID splits (`reference`) take 2 x sample.num_images training images, and `likelihood` the
    # first likelihood.images test images, of any data set: checked here, before any model is trained.
    need, num_classes, need_test = 2 * cfg.sample.num_images, cfg.model.num_classes, cfg.likelihood.images
    if cfg.data.dataset == "folder":
        classes = check_folder(Path(cfg.data.source_dir), need, num_classes, need_test)
    else:
        classes = outputs.BUILTIN_CLASSES[cfg.data.dataset]
    splits = data.locate_and_load(cfg.data.dataset, outputs.RAW_DIR, cfg.data.source_dir, cfg.data.download,
                                  cfg.data.image_size, cfg.data.channels)
    if len(splits.train_images) < need:
        raise DataError(f"{cfg.data.dataset}: {len(splits.train_images)} training images, but the FID reference and floor "
                        f"splits need 2 x sample.num_images = {need}; lower sample.num_images")
    if len(splits.test_images) < need_test:
        raise DataError(f"{cfg.data.dataset}: {len(splits.test_images)} test images, but likelihood.images = {need_test}; "
                        f"lower likelihood.images")
    info = outputs.write_prepared(splits, cfg.data.dataset, classes)
    console.print(f"prepared {info.dataset} from {splits.source}: train {info.train_images}, test {info.test_images}",
                  soft_wrap=True)
    tracking.tag_execution(cfg, {"data_source": splits.source})


def check_folder(root: Path, need: int, num_classes: int, need_test: int) -> list[str]:
    """What the rest of the study needs of an image folder, from its file list alone (before any image is
    decoded): ``need`` training images for the two real FID splits, ``need_test`` test images for bits/dim,
    and as many classes as the model has. Returns the class names (the sub-folders; none for a flat folder)."""
    files, classes = data.folder_files(root)
    test = int(data.folder_test_mask(len(files)).sum())
    train = len(files) - test
    if train < need:
        raise DataError(f"{root}: {len(files)} images leave {train} for training (every 10th is the test split), but the "
                        f"FID reference and floor splits need 2 x sample.num_images = {need}; add images or lower sample.num_images")
    if num_classes and num_classes != len(classes):
        raise ConfigError(f"model.num_classes: invalid value {num_classes}; expected 0 (unconditional) or "
                          f"{len(classes)} (the class sub-folders of {root})")
    if test < need_test:
        raise DataError(f"{root}: {len(files)} images give a test split of {test} (every 10th), but likelihood.images = "
                        f"{need_test}; add images or lower likelihood.images")
    return classes
