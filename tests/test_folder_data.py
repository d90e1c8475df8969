"""`data.dataset: folder`: any folder of PNG/JPEG images, class sub-folders as labels, resized and centre-cropped.

The folders are written by the tests (images of several sizes, PNG and JPEG); the end-to-end test runs the real
`dvc exp run` twice on one folder of two class sub-folders: RGB 32x32 class-conditional, grey 64x64 unconditional.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_repo, mlflow_runs, sh, tiny_params
from ddpm_study import data
from ddpm_study.config import StudyConfig
from ddpm_study.errors import ConfigError, DataError


def write_images(folder: Path, n: int, seed: int, sizes=((40, 30), (30, 40), (32, 32))) -> list[Path]:
    """``n`` RGB images of the given (width, height) sizes in turn, PNG and JPEG alternately: a colour
    gradient (so that resizing and cropping are visible) plus noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([255 * xx / w, 255 * yy / h, np.full((h, w), 40.0 * (seed % 5))], axis=-1)
        img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
        path = folder / f"img_{i:03d}.{'png' if i % 2 == 0 else 'jpg'}"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def two_classes(root: Path, per_class: int = 30) -> Path:
    write_images(root / "cats", per_class, seed=1)
    write_images(root / "dogs", per_class, seed=2)
    return root


def test_class_folders_give_labels_resized_and_centre_cropped_rgb(tmp_path):
    root = two_classes(tmp_path / "pets", per_class=10)
    splits = data.load_folder(root, image_size=16, channels=3)
    assert splits.train_images.shape == (18, 3, 16, 16) and splits.test_images.shape == (2, 3, 16, 16)
    assert splits.train_images.dtype == np.uint8
    assert sorted(set(splits.train_labels.tolist())) == [0, 1]  # cats = 0, dogs = 1 (sorted folder names)
    assert "2 class folders" in splits.source
    # Resize the shorter side to 16, then the centre crop: a 40x30 gradient keeps its middle columns.
    first = np.asarray(Image.open(root / "cats" / "img_000.png").convert("RGB").resize((21, 16)))[:, 2:18]
    assert np.abs(splits.train_images[1].transpose(1, 2, 0).astype(int) - first.astype(int)).mean() < 12


def test_grey_64_and_a_flat_folder_is_one_unlabelled_set(tmp_path):
    write_images(tmp_path / "flat", 12, seed=3)
    splits = data.load_folder(tmp_path / "flat", image_size=64, channels=1)
    assert splits.train_images.shape[1:] == (1, 64, 64) and len(splits.train_images) + len(splits.test_images) == 12
    assert set(splits.train_labels.tolist()) == {0} and "no class folders" in splits.source
    assert data.folder_files(tmp_path / "flat")[1] == []


@pytest.mark.parametrize("make, message", [
    (lambda root: root.mkdir(), "no PNG or JPEG images"),
    (lambda root: None, "not a folder"),
    (lambda root: (write_images(root, 3, 0), write_images(root / "sub", 3, 0)), "both in the folder itself"),
    (lambda root: (write_images(root, 3, 0), (root / "broken.png").write_bytes(b"not a png")), "broken.png: not a readable image"),
])
def test_a_bad_folder_is_one_line_naming_it(tmp_path, make, message):
    root = tmp_path / "images"
    make(root)
    with pytest.raises(DataError, match=message) as err:
        data.load_folder(root, image_size=16, channels=3)
    assert str(root) in str(err.value) and "\n" not in str(err.value)


def folder_params(root: Path, **data_keys) -> dict:
    p = tiny_params()
    p["data"].update({"dataset": "folder", "source_dir": str(root), "image_size": 32, "channels": 3, **data_keys})
    return p


@pytest.mark.parametrize("key, value, message", [
    ("source_dir", "auto", "data.source_dir: invalid value 'auto'; expected the folder of PNG/JPEG images"),
    ("image_size", 0, "data.image_size: invalid value 0; expected an integer >= 8"),
    ("channels", 2, "data.channels: invalid value 2; expected 1 (grey) or 3 (RGB)"),
])
def test_folder_params_are_checked(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StudyConfig.from_dict(folder_params(tmp_path, **{key: value}))


def test_built_in_sets_keep_their_own_size():
    p = tiny_params()
    p["data"]["image_size"] = 32
    with pytest.raises(ConfigError, match=r"data.image_size: invalid value 32; expected 0 or 28 \(fashion_mnist's own size"):
        StudyConfig.from_dict(p)


def test_the_u_net_levels_follow_the_folder_image_size(tmp_path):
    p = folder_params(tmp_path, image_size=36)  # 36 halves twice: three levels at most
    p["model"]["channel_mults"] = [1, 2, 2, 2]
    with pytest.raises(ConfigError, match="at most 3 levels: folder images are 36x36"):
        StudyConfig.from_dict(p)


@pytest.mark.parametrize("classes, per_class, message", [
    (0, 10, r"20 images leave 18 for training .* need 2 x sample.num_images = 48"),
    (0, 27, r"54 images give a test split of 6 \(every 10th\), but likelihood.images = 8; add images or lower"),
    (3, 30, r"model.num_classes: invalid value 3; expected 0 \(unconditional\) or 2 \(the class sub-folders"),
])
def test_prepare_refuses_too_few_images_or_other_classes_before_any_work(tmp_path, monkeypatch, classes, per_class, message):
    from pipeline.stages import prepare

    root = two_classes(tmp_path / "pets", per_class=per_class)
    p = folder_params(root)
    p["model"]["num_classes"] = classes
    monkeypatch.chdir(tmp_path)
    with pytest.raises((DataError, ConfigError), match=message):
        prepare.run(StudyConfig.from_dict(p), tmp_path / "params.yaml")
    assert not (tmp_path / "data" / "prepared").exists()  # nothing decoded, nothing written


@pytest.mark.slow
def test_your_own_folder_through_dvc_exp_run_rgb_32_conditional_and_grey_64(tmp_path, torch_home):
    """The README's "your own data" command, scaled down, on a folder of two classes the test writes."""
    root = two_classes(tmp_path / "pets", per_class=40)  # 80 images: 72 to train, 8 for bits/dim (likelihood.images)
    params = tiny_params()
    params["schedule"] = ["linear", "cosine"]
    repo, env = make_repo(tmp_path / "study", params, torch_home)
    folder = f"-S data.dataset=folder -S data.source_dir={root}"
    sh(f"dvc exp run -n pets-rgb32 {folder} -S data.image_size=32 -S data.channels=3 -S model.num_classes=2", repo, env)
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    assert all(evaluate[n]["fid"] > 0 for n in ("linear", "cosine")) and "quadratic" not in evaluate
    assert evaluate["per_class"]["names"] == ["cats", "dogs"]
    grid = Image.open(repo / "samples/linear/grid.png")
    assert grid.mode == "RGB" and (grid.width - 2) % 34 == 0  # 32 px tiles, 2 px padding
    report = (repo / "reports/main/README.md").read_text()
    assert "cats" in report and "dogs" in report
    client, runs = mlflow_runs(repo)
    run = next(r for r in runs if r.info.run_name == "pets-rgb32-linear")
    assert run.data.params["data.dataset"] == "folder" and run.data.params["data.image_size"] == "32"
    assert "fid" in run.data.metrics
    execution = next(r for r in runs if r.info.run_name.startswith("pets-rgb32-") and r.info.run_name != "pets-rgb32-linear"
                     and r.info.run_name != "pets-rgb32-cosine")
    assert "image folder" in execution.data.tags["data_source"]

    # (`dvc exp run` leaves the first experiment's params in the workspace: say every one that differs)
    sh(f"dvc exp run -n pets-grey64 {folder} -S data.image_size=64 -S data.channels=1 -S model.num_classes=0", repo, env)
    info = json.loads((repo / "data/prepared/info.json").read_text())
    assert info["train_images"][1:] == [1, 64, 64] and info["classes"] == ["cats", "dogs"]
    grid = Image.open(repo / "samples/cosine/grid.png")
    assert grid.mode in ("L", "RGB") and (grid.width - 2) % 66 == 0
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    assert all(evaluate[n]["fid"] > 0 for n in ("linear", "cosine")) and "per_class" not in evaluate
