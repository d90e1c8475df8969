"""Data loading from official formats: IDX (MNIST, Fashion-MNIST) and CIFAR-10 binary; bad files."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from ddpm_study.data import IDX_FILES, DataError, locate_and_load, real_splits


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    """An IDX file as LeCun's format defines it: magic (0, 0, type 0x08 = uint8, ndim), big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_mnist_like(folder: Path, n_train=20, n_test=10, gz=True, shape=(28, 28)) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, *shape)),
        "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, *shape)),
        "test_labels": rng.integers(0, 10, n_test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_FILES.items():
        write_idx(folder / name, arrays[key], gz=gz)
    return arrays


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_from_local_folder_then_data_folder(tmp_path, dataset, gz):
    arrays = write_mnist_like(tmp_path / "src", gz=gz)
    splits = locate_and_load(dataset, tmp_path / "raw", str(tmp_path / "src"), download=False)
    assert splits.train_images.shape == (20, 1, 28, 28) and splits.train_images.dtype == np.uint8
    np.testing.assert_array_equal(splits.train_images[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(splits.test_labels, arrays["test_labels"])
    assert "local folder" in splits.source
    # Second time the files are found in the data folder itself, even with the source gone.
    again = locate_and_load(dataset, tmp_path / "raw", str(tmp_path / "nowhere"), download=False)
    assert "data folder" in again.source
    np.testing.assert_array_equal(again.train_images, splits.train_images)


def test_real_fashion_mnist(tmp_path, fashion_mnist_dir):
    splits = locate_and_load("fashion_mnist", tmp_path, str(fashion_mnist_dir), download=False)
    assert splits.train_images.shape == (60000, 1, 28, 28) and splits.test_images.shape == (10000, 1, 28, 28)
    assert sorted(np.unique(splits.train_labels)) == list(range(10))
    assert np.bincount(splits.train_labels).tolist() == [6000] * 10


def test_truncated_gzip_names_the_file(tmp_path):
    write_mnist_like(tmp_path / "src")
    victim = tmp_path / "src" / "train-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*truncated or corrupt"):
        locate_and_load("mnist", tmp_path / "raw", str(tmp_path / "src"), download=False)


def test_truncated_idx_names_the_file(tmp_path):
    write_mnist_like(tmp_path / "src", gz=False)
    victim = tmp_path / "src" / "t10k-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:-50])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        locate_and_load("mnist", tmp_path / "raw", str(tmp_path / "src"), download=False)


def test_corrupt_header_names_the_file(tmp_path):
    write_mnist_like(tmp_path / "src", gz=False)
    victim = tmp_path / "src" / "train-labels-idx1-ubyte"
    victim.write_bytes(b"\xff\xff\xff\xff" + victim.read_bytes()[4:])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.*not a valid IDX"):
        locate_and_load("mnist", tmp_path / "raw", str(tmp_path / "src"), download=False)


def test_wrong_shape_names_the_file(tmp_path):
    write_mnist_like(tmp_path / "src", shape=(32, 32))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*\[N, 28, 28\]"):
        locate_and_load("fashion_mnist", tmp_path / "raw", str(tmp_path / "src"), download=False)


@pytest.mark.parametrize("download", [False, True])
def test_empty_source_folder_names_it(tmp_path, download):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="data.source_dir=.*empty.* lacks the official fashion_mnist files"):
        locate_and_load("fashion_mnist", tmp_path / "raw", str(tmp_path / "empty"), download=download)


def test_nothing_anywhere_without_download(tmp_path):
    with pytest.raises(DataError, match="no files in .*download is false"):
        locate_and_load("mnist", tmp_path / "raw", "", download=False)


def test_auto_source_never_gives_fashion_mnist_for_mnist(tmp_path, fashion_mnist_dir):
    """The Debian folder holds Fashion-MNIST under MNIST's file names; "auto" must not use it for MNIST."""
    with pytest.raises(DataError, match="no files in .*MNIST"):
        locate_and_load("mnist", tmp_path / "raw", "auto", download=False)
    splits = locate_and_load("fashion_mnist", tmp_path / "raw", "auto", download=False)
    assert "local folder /usr/share/datasets/fashion-mnist" == splits.source


def write_cifar_bin(folder: Path, n=7, truncate: str = "") -> np.ndarray:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    first = None
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, n).astype(np.uint8)
        pixels = rng.integers(0, 256, (n, 3 * 32 * 32)).astype(np.uint8)
        raw = np.concatenate([labels[:, None], pixels], axis=1).tobytes()
        (folder / name).write_bytes(raw[:-10] if name == truncate else raw)
        first = first if first is not None else (labels, pixels)
    return first


def test_cifar10_binary_version(tmp_path):
    labels, pixels = write_cifar_bin(tmp_path / "src" / "cifar-10-batches-bin")
    splits = locate_and_load("cifar10", tmp_path / "raw", str(tmp_path / "src"), download=False)
    assert splits.train_images.shape == (35, 3, 32, 32) and splits.test_images.shape == (7, 3, 32, 32)
    np.testing.assert_array_equal(splits.train_labels[:7], labels)
    # Channel planes in R, G, B order, each row-major 32x32.
    np.testing.assert_array_equal(splits.train_images[0, 1].flatten(), pixels[0, 1024:2048])


def test_cifar10_truncated_batch_names_the_file(tmp_path):
    write_cifar_bin(tmp_path / "src", truncate="data_batch_3.bin")
    with pytest.raises(DataError, match="data_batch_3.bin.*truncated or corrupt"):
        locate_and_load("cifar10", tmp_path / "raw", str(tmp_path / "src"), download=False)


def test_real_splits_disjoint_and_fixed():
    a, b = real_splits(100, 30, seed=0)
    assert len(set(a) | set(b)) == 60
    a2, _ = real_splits(100, 30, seed=0)
    np.testing.assert_array_equal(a, a2)
    with pytest.raises(DataError, match="2 x 60"):
        real_splits(100, 60, seed=0)


def test_two_sources_of_the_same_files_give_the_same_prepared_data(tmp_path, monkeypatch, fashion_mnist_dir):
    """data/prepared holds what the files contain, not where they were found: the real `prepare` stage on the
    Debian folder and on a copy elsewhere writes byte-identical files, so DVC's content hash of data/prepared,
    and everything downstream of it, is the same for two teammates with the same data."""
    import hashlib
    import shutil

    import yaml
    from typer.testing import CliRunner

    from conftest import default_params
    from pipeline.cli import app

    copy = tmp_path / "elsewhere" / "fashion"
    shutil.copytree(fashion_mnist_dir, copy)
    manifests = []
    for n, source in enumerate((fashion_mnist_dir, copy)):
        project = tmp_path / f"project{n}"
        project.mkdir()
        monkeypatch.chdir(project)
        p = default_params(extended=True)
        p["data"]["source_dir"] = str(source)
        (project / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        result = CliRunner().invoke(app, ["prepare"])
        assert result.exit_code == 0, result.output
        assert str(source) in "".join(result.output.split("\n"))  # where it came from: in the log
        prepared = project / "data" / "prepared"
        manifests.append({f.relative_to(prepared).as_posix(): hashlib.md5(f.read_bytes()).hexdigest()
                          for f in sorted(prepared.rglob("*")) if f.is_file()})
    assert manifests[0] == manifests[1] and "info.json" in manifests[0]
    assert str(fashion_mnist_dir) not in (tmp_path / "project0/data/prepared/info.json").read_text()
    # ... and in MLflow, as a tag of the execution run (the stage's store: mlflow.db in its project root).
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'project1' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ddpm-schedules").experiment_id])
    assert run.data.tags["data_source"].endswith(str(copy))
