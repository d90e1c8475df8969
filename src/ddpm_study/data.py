"""Data sets in their official formats, read with torchvision, kept as uint8 arrays.

Source order for a data set (``locate_and_load``):
1. files already in the data folder (``raw_dir``), in torchvision's layout;
2. a local folder of the official files (``source_dir``), copied into the data folder. "auto"
   means the folder a Debian package puts the data set in, if any (``dataset-fashion-mnist``:
   ``/usr/share/datasets/fashion-mnist``); an explicit folder that lacks the files is an error;
3. torchvision's download into the data folder, when ``download`` is true.
Every file is checked: a truncated, corrupt or wrong-shaped file raises ``DataError`` naming it.

``folder`` is any folder of PNG/JPEG files (``load_folder``): class sub-folders give labels, as
torchvision's ``ImageFolder`` reads them; every image is converted to grey or RGB, resized (shorter
side) and centre-cropped to a square with torchvision's transforms.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataError

# torchvision's class name (its folder under the data root) and the official file names.
IDX_SETS = {
    "fashion_mnist": "FashionMNIST",
    "mnist": "MNIST",
}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Where Debian's packages put a data set ("auto" source_dir); data sets not listed have none.
DEBIAN_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
CIFAR_TRAIN_BIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_TEST_BIN = ["test_batch.bin"]
CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then the 32x32 R, G, B planes


@dataclass(frozen=True)
class Splits:
    """uint8 images [N, C, H, W] and int64 labels [N] of the official train and test splits."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def locate_and_load(dataset: str, raw_dir: Path, source_dir: str, download: bool, image_size: int = 0,
                    channels: int = 0) -> Splits:
    if dataset == "folder":
        return load_folder(Path(source_dir), image_size, channels)
    if source_dir == "auto":
        source_dir = DEBIAN_DIRS.get(dataset, "")
        if source_dir and not Path(source_dir).is_dir():
            source_dir = ""
    if dataset in IDX_SETS:
        return _load_idx_dataset(dataset, raw_dir, source_dir, download)
    if dataset == "cifar10":
        return _load_cifar10(raw_dir, source_dir, download)
    raise DataError(f"unknown dataset {dataset!r}; valid: {', '.join([*IDX_SETS, 'cifar10', 'folder'])}")


# --- MNIST-style IDX files ---------------------------------------------------------------------
def _load_idx_dataset(dataset: str, raw_dir: Path, source_dir: str, download: bool) -> Splits:
    folder = raw_dir / IDX_SETS[dataset] / "raw"
    if all((folder / f).is_file() for f in IDX_FILES.values()):
        source = f"data folder {folder}"
    elif source_dir:
        found = _find_idx_sources(Path(source_dir))
        if not found:
            raise DataError(
                f"data.source_dir={source_dir!r} lacks the official {dataset} files "
                f"({', '.join(IDX_FILES.values())}, plain or .gz)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        for name, src in found.items():
            _copy_maybe_gunzip(src, folder / name)
        source = f"local folder {source_dir}"
    elif download:
        import torchvision.datasets as tvd

        getattr(tvd, IDX_SETS[dataset])(root=str(raw_dir), download=True)
        source = "torchvision download"
    else:
        raise DataError(
            f"{dataset}: no files in {folder} or in data.source_dir={source_dir!r}, and data.download is false"
        )
    arrays = {key: _read_idx(folder / name) for key, name in IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{folder / IDX_FILES[split + '_images']}: expected images of shape [N, 28, 28], got {list(images.shape)}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{folder / IDX_FILES[split + '_labels']}: expected {len(images)} labels, got shape {list(labels.shape)}")
    return Splits(
        train_images=arrays["train_images"][:, None],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"][:, None],
        test_labels=arrays["test_labels"].astype(np.int64),
        source=source,
    )


def _find_idx_sources(source_dir: Path) -> dict[str, Path]:
    """The four official files in ``source_dir``, each plain or gzipped; empty if any is absent."""
    found = {}
    for name in IDX_FILES.values():
        for candidate in (source_dir / name, source_dir / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            return {}
    return found


def _copy_maybe_gunzip(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".partial")
    try:
        with (gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb")) as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{src}: cannot decompress ({err}); the file is truncated or corrupt") from None
    tmp.replace(dst)


def _read_idx(path: Path) -> np.ndarray:
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    try:
        tensor = read_sn3_pascalvincent_tensor(str(path), strict=False)
    except (AssertionError, ValueError, RuntimeError, KeyError) as err:
        raise DataError(f"{path}: not a valid IDX file (bad header or size: {err or 'header check failed'})") from None
    # torchvision checks the element count only in some versions; check it here too.
    expected = 4 * (1 + tensor.dim()) + tensor.numel() * tensor.element_size()
    if path.stat().st_size != expected:
        raise DataError(f"{path}: {path.stat().st_size} bytes, but its header describes {expected}; truncated or corrupt")
    return tensor.numpy().astype(np.uint8)


# --- CIFAR-10 -----------------------------------------------------------------------------------
def _load_cifar10(raw_dir: Path, source_dir: str, download: bool) -> Splits:
    bin_dir = _find_cifar_bin(raw_dir) or (_find_cifar_bin(Path(source_dir)) if source_dir else None)
    if source_dir and bin_dir is None and not (Path(source_dir) / "cifar-10-batches-py").is_dir():
        raise DataError(f"data.source_dir={source_dir!r} lacks the official CIFAR-10 files "
                        "(binary version *.bin, or cifar-10-batches-py/)")
    if bin_dir is not None:
        train = [_read_cifar_bin(bin_dir / f) for f in CIFAR_TRAIN_BIN]
        test = _read_cifar_bin(bin_dir / CIFAR_TEST_BIN[0])
        return Splits(
            train_images=np.concatenate([x for x, _ in train]),
            train_labels=np.concatenate([y for _, y in train]),
            test_images=test[0],
            test_labels=test[1],
            source=f"binary version in {bin_dir}",
        )
    import torchvision.datasets as tvd

    # The python version is a pickle: torchvision reads it only after checking each file's MD5
    # against the official one, so nothing but the official files is ever unpickled.
    roots = [raw_dir] + ([Path(source_dir)] if source_dir else [])
    for root in roots:
        if (root / "cifar-10-batches-py").is_dir():
            try:
                train, test = (tvd.CIFAR10(str(root), train=s, download=False) for s in (True, False))
            except RuntimeError as err:
                raise DataError(f"{root / 'cifar-10-batches-py'}: {err}") from None
            return _cifar_from_torchvision(train, test, f"python version in {root}")
    if download:
        train, test = (tvd.CIFAR10(str(raw_dir), train=s, download=True) for s in (True, False))
        return _cifar_from_torchvision(train, test, "torchvision download")
    raise DataError(f"cifar10: no files in {raw_dir} or in data.source_dir={source_dir!r}, and data.download is false")


def _find_cifar_bin(root: Path) -> Path | None:
    for folder in (root, root / "cifar-10-batches-bin"):
        if all((folder / f).is_file() for f in CIFAR_TRAIN_BIN + CIFAR_TEST_BIN):
            return folder
    return None


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR-10 records; truncated or corrupt")
    records = raw.reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{path}: label {labels.max()} outside 0-9; not a CIFAR-10 binary file")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def _cifar_from_torchvision(train, test, source: str) -> Splits:
    def chw(ds) -> np.ndarray:
        return np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))

    return Splits(chw(train), np.asarray(train.targets), chw(test), np.asarray(test.targets), source)


# --- a folder of images -------------------------------------------------------------------------
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FOLDER_TEST_FRACTION = 0.1  # held out (every 10th image in sorted order): a folder has no official test split


def folder_files(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, label) of every image under ``root`` and the class names, sorted; raises ``DataError``.

    Images directly in ``root``: one unlabelled set (no classes). Images in sub-folders: one class per
    sub-folder (``torchvision.datasets.folder.find_classes``), label = its index. Both at once is an error.
    """
    if not root.is_dir():
        raise DataError(f"data.source_dir={str(root)!r}: not a folder (data.dataset folder needs a folder of PNG/JPEG images)")
    is_image = lambda p: p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES  # noqa: E731
    flat = sorted(p for p in root.iterdir() if is_image(p))
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    nested = [(p, d.name) for d in subdirs for p in sorted(d.rglob("*")) if is_image(p)]
    if flat and nested:
        raise DataError(f"{root}: images both in the folder itself ({flat[0].name}) and in class sub-folders "
                        f"({nested[0][0].relative_to(root)}); use one layout")
    if flat:
        return [(p, 0) for p in flat], []
    if not nested:
        raise DataError(f"{root}: no PNG or JPEG images ({', '.join(IMAGE_SUFFIXES)}) in it or in its sub-folders")
    from torchvision.datasets.folder import find_classes

    classes, index = find_classes(str(root))
    return [(p, index[c]) for p, c in nested], classes


def folder_test_mask(num_images: int) -> np.ndarray:
    """Which of a folder's images (in ``folder_files`` order) form its test split: every 10th, from the first."""
    test = np.zeros(num_images, dtype=bool)
    test[:: round(1 / FOLDER_TEST_FRACTION)] = True
    return test


def load_folder(root: Path, image_size: int, channels: int) -> Splits:
    """Every image under ``root`` as uint8 [N, channels, image_size, image_size], split 90 / 10 into train and test."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms import v2

    files, classes = folder_files(root)
    transform = v2.Compose([v2.PILToTensor(), v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)])
    mode = {1: "L", 3: "RGB"}[channels]
    images = np.empty((len(files), channels, image_size, image_size), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as img:
                images[i] = transform(img.convert(mode)).numpy()
        except (OSError, UnidentifiedImageError, ValueError, RuntimeError) as err:
            raise DataError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None
    labels = np.array([label for _, label in files], dtype=np.int64)
    test = folder_test_mask(len(files))
    if len(files) < 2:
        raise DataError(f"{root}: {len(files)} image; a training and a test split need at least 2")
    layout = f"{len(classes)} class folders" if classes else "no class folders"
    return Splits(images[~test], labels[~test], images[test], labels[test],
                  source=f"image folder {root} ({len(files)} images, {layout}, {channels}x{image_size}x{image_size})")


# --- prepared arrays ----------------------------------------------------------------------------
def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images_uint8.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding and clipping."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def real_splits(num_train: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two disjoint fixed real splits of size ``n`` of the training set (reference, floor)."""
    if 2 * n > num_train:
        raise DataError(f"the FID reference needs 2 x {n} real images but the training set has {num_train}")
    perm = np.random.default_rng(seed).permutation(num_train)
    return perm[:n], perm[n : 2 * n]
