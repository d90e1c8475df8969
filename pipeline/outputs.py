"""Every file a stage writes: its path, its type, its writer and its reader, one section per stage.

Stages talk only through these files. Only the owning stage calls a section's ``write_*``; every
other module reads through the ``read_*`` functions and gets dataclasses, not dicts of strings.
Paths are relative to the project root; each section's ``OUTS`` are the outputs ``dvc.yaml``
declares for its stage (``tests/test_dvc_yaml.py`` checks the two agree). The JSON layouts are
those ``dvc metrics show`` prints and earlier runs committed; the dataclasses reproduce them byte
for byte.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

import numpy as np
import pandas as pd

from ddpm_study import samplers
from ddpm_study.files import atomic_path, read_array, write_array, write_json, write_text

if TYPE_CHECKING:
    from ddpm_study.config import SweepConfig

PARAMS = Path("params.yaml")  # input of every stage; not written by any


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _write_tsv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)


# --- check: the params gate ------------------------------------------------------------------------
PARAMS_OK = Path("data/params.ok")  # constant content: passing the gate reruns nothing downstream
CHECK_OUTS = (PARAMS_OK,)


def write_params_ok() -> None:
    write_text(PARAMS_OK, "params.yaml is valid\n")


# --- prepare: the data set as uint8 arrays ----------------------------------------------------------
RAW_DIR = Path("data/raw")  # download cache and copies of the official files (not a DVC output)
PREPARED_DIR = Path("data/prepared")
PREPARED_INFO = PREPARED_DIR / "info.json"
PREPARED_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
PREPARE_OUTS = (PREPARED_DIR,)


@dataclass(frozen=True)
class PreparedInfo:
    """What the arrays hold, not where they came from: DVC hashes data/prepared by content, so two copies of
    the same files (a Debian folder, data/raw, a download) give the same hash and rerun nothing downstream.
    The source goes to the stage's log and the MLflow execution run (tag ``data_source``)."""

    dataset: str
    train_images: list[int]  # shape [N, C, H, W]
    test_images: list[int]
    classes: list[str]  # label i's name: the official order, or a folder's class sub-folders (empty: none)


# Label order of the official files (torchvision's ``classes``).
BUILTIN_CLASSES = {
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
    "mnist": [str(d) for d in range(10)],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def prepared_array(name: str) -> Path:
    """name: one of PREPARED_ARRAYS."""
    if name not in PREPARED_ARRAYS:
        raise ValueError(f"unknown prepared array {name!r}; valid: {', '.join(PREPARED_ARRAYS)}")
    return PREPARED_DIR / f"{name}.npy"


def write_prepared(splits, dataset: str, classes: Sequence[str]) -> PreparedInfo:
    """``splits``: a ``ddpm_study.data.Splits``; ``classes``: label i's name."""
    for name in PREPARED_ARRAYS:
        write_array(prepared_array(name), getattr(splits, name))
    info = PreparedInfo(dataset, list(splits.train_images.shape), list(splits.test_images.shape), list(classes))
    write_json(PREPARED_INFO, dataclasses.asdict(info))
    return info


def read_prepared_info() -> PreparedInfo:
    return PreparedInfo(**json.loads(PREPARED_INFO.read_text()))


def read_prepared(name: str) -> np.ndarray:
    """uint8 images [N, C, H, W] (``*_images``) or int64 labels [N] (``*_labels``)."""
    return read_array(prepared_array(name))


# --- reference: Inception features of two fixed real splits -----------------------------------------
REFERENCE_DIR = Path("data/reference")
REFERENCE_FEATURES = REFERENCE_DIR / "features_reference.npy"  # real split A: what samples are compared to
FLOOR_FEATURES = REFERENCE_DIR / "features_floor.npy"  # real split B: A vs B is the FID floor
REFERENCE_INFO = REFERENCE_DIR / "info.json"
REFERENCE_OUTS = (REFERENCE_DIR,)


@dataclass(frozen=True)
class ReferenceInfo:
    num_images: int
    feature_extractor: str
    feature_layer: str
    split_seed: int


@dataclass(frozen=True)
class Reference:
    reference: np.ndarray  # [N, 2048] features of split A
    floor: np.ndarray  # [N, 2048] features of split B


def write_reference(ref: Reference, info: ReferenceInfo) -> None:
    write_array(REFERENCE_FEATURES, ref.reference)
    write_array(FLOOR_FEATURES, ref.floor)
    write_json(REFERENCE_INFO, dataclasses.asdict(info))


def read_reference() -> Reference:
    return Reference(read_array(REFERENCE_FEATURES), read_array(FLOOR_FEATURES))


# --- train: checkpoints, loss histories, per-schedule summary ---------------------------------------
MODELS_DIR = Path("models")
METRICS_DIR = Path("metrics")
TRAIN_METRICS = METRICS_DIR / "train.json"
TRAIN_PLOTS_DIR = Path("plots/train")
TRAIN_OUTS = (MODELS_DIR, TRAIN_METRICS, TRAIN_PLOTS_DIR)

HistoryRow = dict[str, Optional[float]]  # step, loss, lr, images_per_s, loss_bucket_<i> (None: empty bucket)


@dataclass(frozen=True)
class TrainSummary:
    final_loss: float  # mean loss over the last tenth of training (training.final_loss)
    train_time_s: float
    steps: int
    alpha_bar_T: float  # schedules.summarize
    log_snr_max: float
    log_snr_min: float


def checkpoint(schedule: str) -> Path:
    return MODELS_DIR / schedule / "checkpoint.pt"


def train_history(schedule: str) -> Path:
    return TRAIN_PLOTS_DIR / f"{schedule}.tsv"


def write_train_history(schedule: str, rows: Sequence[HistoryRow]) -> None:
    _write_tsv(train_history(schedule), pd.DataFrame(rows))


def read_train_history(schedule: str) -> list[HistoryRow]:
    """The logged rows; an empty loss bucket reads back as None."""
    table = pd.read_csv(train_history(schedule), sep="\t").astype(object)
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in table.to_dict("records")]


def write_train_metrics(summaries: dict[str, TrainSummary]) -> None:
    write_json(TRAIN_METRICS, {name: dataclasses.asdict(s) for name, s in summaries.items()})


def read_train_metrics() -> dict[str, TrainSummary]:
    return {name: TrainSummary(**s) for name, s in _read_json(TRAIN_METRICS).items()}


# --- sample: the main setting's samples and pictures ------------------------------------------------
SAMPLES_DIR = Path("samples")
SAMPLE_OUTS = (SAMPLES_DIR,)


@dataclass(frozen=True)
class SampleInfo:
    sampler: str
    steps: int
    eta: float
    num_images: int
    sample_time_s: float


def sample_dir(schedule: str) -> Path:
    return SAMPLES_DIR / schedule


def sample_images(schedule: str) -> Path:
    return sample_dir(schedule) / "images.npy"


def sample_grid(schedule: str) -> Path:
    return sample_dir(schedule) / "grid.png"


def sample_gif(schedule: str) -> Path:
    return sample_dir(schedule) / "denoising.gif"


def forward_strip(schedule: str) -> Path:
    return sample_dir(schedule) / "forward.png"


def sample_info(schedule: str) -> Path:
    return sample_dir(schedule) / "info.json"


def class_grid(schedule: str) -> Path:
    """Conditional models only: one row per class, every row from the same noise."""
    return sample_dir(schedule) / "classes.png"


def sample_pictures(schedule: str) -> tuple[Path, Path, Path]:
    """The pictures a reader looks at: sample grid, denoising GIF, forward-process strip."""
    return sample_grid(schedule), sample_gif(schedule), forward_strip(schedule)


def write_sample_images(schedule: str, images: np.ndarray) -> None:
    write_array(sample_images(schedule), images)


def read_sample_images(schedule: str) -> np.ndarray:
    """uint8 [N, C, H, W]."""
    return read_array(sample_images(schedule))


def write_sample_info(schedule: str, info: SampleInfo) -> None:
    write_json(sample_info(schedule), dataclasses.asdict(info))


def read_sample_info(schedule: str) -> SampleInfo:
    return SampleInfo(**_read_json(sample_info(schedule)))


# --- scores (the evaluate and score_sweep files share them) -----------------------------------------
@dataclass(frozen=True)
class Scores:
    """FID with its jackknife std, KID with its std over subsets, precision and recall (Kynkäänniemi et al., k = 3,
    on the same Inception features) with their jackknife stds (field order: the TSV columns)."""

    fid: float
    kid_mean: float
    kid_std: float
    fid_std: float
    precision: Optional[float] = None  # None: scored before precision/recall were
    precision_std: Optional[float] = None
    recall: Optional[float] = None
    recall_std: Optional[float] = None
    fid_inf: Optional[float] = None  # FID∞ (Chong & Forsyth), its jackknife std; None: not computed (ceilings, older runs)
    fid_inf_std: Optional[float] = None

    def to_json(self) -> dict[str, Any]:
        return _without_missing_inf(self)


def pairs_from_json(d: dict[str, Any], names: Sequence[str]) -> dict[tuple[str, str], "Pair"]:
    """``{"<a>-<b>": Pair}`` (names may hold "-") back to ``{(a, b): Pair}``."""
    pairs = {}
    for key, p in d.items():
        (a, b), = [(a, key[len(a) + 1 :]) for a in names if key.startswith(f"{a}-") and key[len(a) + 1 :] in names]
        pairs[(a, b)] = Pair(**p)
    return pairs


INF_FIELDS = ("fid_inf", "fid_inf_std", "diff_inf", "std_inf")


def _without_missing_inf(record: Any) -> dict[str, Any]:
    """A record's fields, the FID∞ ones left out where not computed: files scored before FID∞ read back unchanged."""
    return {k: v for k, v in dataclasses.asdict(record).items() if not (k in INF_FIELDS and v is None)}


@dataclass(frozen=True)
class Pair:
    """A paired difference FID(a) - FID(b), its jackknife std, and whether it is within noise; the same difference
    of FID∞ and its std (None: not computed)."""

    diff: float
    std: float
    within_noise: bool
    diff_inf: Optional[float] = None
    std_inf: Optional[float] = None

    def reversed(self) -> "Pair":
        return dataclasses.replace(self, diff=-self.diff, diff_inf=None if self.diff_inf is None else -self.diff_inf)

    def to_json(self) -> dict[str, Any]:
        return _without_missing_inf(self)


@dataclass(frozen=True)
class ScoreTable:
    """Scores of paired generated sets (schedules sampled from the same noise) and every pair's difference.

    On disk: ``{<name>: Scores, ..., "pairs": {"<a>-<b>": Pair}}``.
    """

    scores: dict[str, Scores]
    pairs: dict[tuple[str, str], Pair]

    def pair(self, a: str, b: str) -> Pair:
        """a - b, whichever order the file stores it in."""
        return self.pairs[(a, b)] if (a, b) in self.pairs else self.pairs[(b, a)].reversed()

    def to_json(self) -> dict[str, Any]:
        return {**{n: s.to_json() for n, s in self.scores.items()},
                "pairs": {f"{a}-{b}": p.to_json() for (a, b), p in self.pairs.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any], skip: Sequence[str] = ()) -> "ScoreTable":
        """``skip``: other keys stored beside the table in the same mapping."""
        names = [k for k in d if k != "pairs" and k not in skip]
        return cls({n: Scores(**d[n]) for n in names}, pairs_from_json(d["pairs"], names))


@dataclass(frozen=True)
class Anchored:
    """A score table at one N with what it is read against: the real-vs-real floor and the ceilings."""

    num_images: int
    jackknife_groups: int
    real_vs_real: Scores
    ceilings: dict[str, Scores]  # gaussian_noise, mean_image

    def anchors_json(self) -> dict[str, Any]:
        return {"num_images": self.num_images, "jackknife_groups": self.jackknife_groups,
                "real_vs_real": self.real_vs_real.to_json(),
                "ceilings": {n: s.to_json() for n, s in self.ceilings.items()}}

    @staticmethod
    def anchors_from_json(d: dict[str, Any]) -> dict[str, Any]:
        return {"num_images": d["num_images"], "jackknife_groups": d["jackknife_groups"],
                "real_vs_real": Scores(**d["real_vs_real"]),
                "ceilings": {n: Scores(**s) for n, s in d["ceilings"].items()}}


# --- evaluate: the main setting's scores ------------------------------------------------------------
EVALUATE_METRICS = METRICS_DIR / "evaluate.json"
EVALUATE_OUTS = (EVALUATE_METRICS,)


@dataclass(frozen=True)
class EvaluateMetrics(Anchored):
    table: ScoreTable  # on disk flattened into the top level, beside the anchors
    per_class: Optional["PerClass"] = None  # class-conditional models only


@dataclass(frozen=True)
class PerClass:
    """FID of each class's samples against the reference split's images of that class (intra-class FID),
    and the same for the floor split: the real-vs-real floor at each class's N."""

    names: list[str]  # class i's name (``PreparedInfo.classes``)
    counts: list[int]  # generated images per class (the reference split's counts differ a little)
    floor: list[Optional[float]]  # None: a split with fewer than 2 images of the class (tiny N)
    fid: dict[str, list[Optional[float]]]  # per schedule, per class

    def scored(self) -> list[int]:
        """The classes with a FID for the floor and every schedule: what the means average over."""
        return [c for c, f in enumerate(self.floor) if f is not None and all(v[c] is not None for v in self.fid.values())]

    def mean(self, name: str) -> float:
        return float(np.mean([self.fid[name][c] for c in self.scored()]))

    @property
    def floor_mean(self) -> float:
        return float(np.mean([self.floor[c] for c in self.scored()]))


def write_evaluate_metrics(m: EvaluateMetrics) -> None:
    extra = {} if m.per_class is None else {"per_class": dataclasses.asdict(m.per_class)}
    write_json(EVALUATE_METRICS, {**m.anchors_json(), **m.table.to_json(), **extra})


def read_evaluate_metrics(text: Optional[str] = None) -> EvaluateMetrics:
    """metrics/evaluate.json, or the same file's ``text`` (e.g. as git has it committed)."""
    d = _read_json(EVALUATE_METRICS) if text is None else json.loads(text)
    anchors = Anchored.anchors_from_json(d)
    per_class = PerClass(**d["per_class"]) if "per_class" in d else None
    return EvaluateMetrics(**anchors, table=ScoreTable.from_json(d, skip=[*anchors, "per_class"]), per_class=per_class)


# --- likelihood: bits/dim per schedule on the test split ---------------------------------------------
LIKELIHOOD_METRICS = METRICS_DIR / "likelihood.json"
LIKELIHOOD_OUTS = (LIKELIHOOD_METRICS,)


@dataclass(frozen=True)
class Bits:
    """One model's bits/dim: the mean over images with its standard error, and the prior term L_T in it."""

    bpd: float
    bpd_std: float
    prior: float


@dataclass(frozen=True)
class LikelihoodMetrics:
    """Bits/dim of every schedule on the same test images and timesteps; pairs: differences paired over images."""

    split: str
    images: int
    strata: int  # model calls per image after the exact ones (exact_terms + strata = timesteps: the full sum)
    timesteps: int
    schedules: dict[str, Bits]
    pairs: dict[tuple[str, str], Pair]
    exact_terms: int = 0  # the terms at t < exact_terms summed exactly (files written before it had none)

    def pair(self, a: str, b: str) -> Pair:
        return self.pairs[(a, b)] if (a, b) in self.pairs else self.pairs[(b, a)].reversed()


def write_likelihood_metrics(m: LikelihoodMetrics) -> None:
    write_json(LIKELIHOOD_METRICS, {"split": m.split, "images": m.images, "exact_terms": m.exact_terms, "strata": m.strata,
                                    "timesteps": m.timesteps,
                                    "schedules": {n: dataclasses.asdict(b) for n, b in m.schedules.items()},
                                    "pairs": {f"{a}-{b}": p.to_json() for (a, b), p in m.pairs.items()}})


def read_likelihood_metrics(text: Optional[str] = None) -> LikelihoodMetrics:
    """metrics/likelihood.json, or the same file's ``text`` (e.g. as git has it committed)."""
    d = _read_json(LIKELIHOOD_METRICS) if text is None else json.loads(text)
    return LikelihoodMetrics(d["split"], d["images"], d["strata"], d["timesteps"],
                             {n: Bits(**b) for n, b in d["schedules"].items()}, pairs_from_json(d["pairs"], list(d["schedules"])),
                             d.get("exact_terms", 0))


# --- sweep: samples and Inception features per schedule x sampler x NFE -----------------------------
SWEEP_DIR = Path("sweep")
SWEEP_OUTS = (SWEEP_DIR,)
SWEEP_ARRAYS = ("images", "trajectory", "features")


@dataclass(frozen=True, order=True)
class Cell:
    """One setting of the sweep. ``key`` ("ddim_10"; guided: "ddpm_w3_10") names it in files and metrics, built only here.

    ``nfe`` is the budget of network calls per sample; the sampler runs ``steps`` steps, the most that fit
    (``samplers.steps_within``: 10 NFE are 10 DDPM steps or 5 Heun steps, 9 calls), and ``calls`` are what they cost."""

    sampler: str
    nfe: int
    guidance: float = 0.0  # classifier-free guidance weight (conditional models)

    @property
    def steps(self) -> int:
        return samplers.steps_within(self.sampler, self.nfe)

    @property
    def calls(self) -> int:
        return samplers.model_calls(self.sampler, self.steps)

    @property
    def setting(self) -> str:
        """The sampler, with its guidance weight when there is one: "ddpm", "ddpm_w3"."""
        return self.sampler if self.guidance == 0 else f"{self.sampler}_w{self.guidance:g}"

    @property
    def key(self) -> str:
        return f"{self.setting}_{self.nfe}"

    @classmethod
    def from_key(cls, key: str) -> "Cell":
        sampler, nfe = key.rsplit("_", 1)
        sampler, *guidance = sampler.split("_w") if "_w" in sampler else (sampler,)
        return cls(sampler, int(nfe), float(guidance[0]) if guidance else 0.0)


def sweep_cells(samplers: Sequence[str], nfe: Sequence[int], guidance: Sequence[float] = (0.0,)) -> list[Cell]:
    """Every (sampler, NFE, guidance) of a full grid, sampler by sampler, then guidance as given, NFE ascending."""
    return [Cell(sampler, n, w) for sampler in samplers for w in guidance for n in sorted(nfe)]


def sweep_grid(sw: SweepConfig) -> list[Cell]:
    """The `sweep` section's cells, in ``sweep_cells``' order: each sampler at its ``SweepConfig.budgets``."""
    return [Cell(sampler, n, w) for sampler in sw.samplers for w in sw.guidance for n in sw.budgets(sampler)]


def sweep_array(schedule: str, cell: Cell, kind: str) -> Path:
    """kind: images (uint8 [N, C, H, W]), trajectory (uint8 [frames, G, C, H, W]) or features ([N, 2048])."""
    if kind not in SWEEP_ARRAYS:
        raise ValueError(f"unknown sweep array {kind!r}; valid: {', '.join(SWEEP_ARRAYS)}")
    return SWEEP_DIR / schedule / f"{cell.key}_{kind}.npy"


def write_sweep_cell(schedule: str, cell: Cell, images: np.ndarray, trajectory: np.ndarray, features: np.ndarray) -> None:
    for kind, array in zip(SWEEP_ARRAYS, (images, trajectory, features)):
        write_array(sweep_array(schedule, cell, kind), array)


def read_sweep_array(schedule: str, cell: Cell, kind: str) -> np.ndarray:
    return read_array(sweep_array(schedule, cell, kind))


# --- score_sweep: the sweep's scores ----------------------------------------------------------------
SWEEP_METRICS = METRICS_DIR / "sweep.json"
SWEEP_PLOTS_DIR = Path("plots/sweep")
SCORE_SWEEP_OUTS = (SWEEP_METRICS, SWEEP_PLOTS_DIR)


@dataclass(frozen=True)
class SweepMetrics(Anchored):
    eta: float
    cells: dict[Cell, ScoreTable]
    # Per schedule, every cell against one baseline cell (``baseline_cell``: DDPM at sweep.baseline_nfe), paired over the
    # shared x_T by one jackknife per schedule: FID(cell) - FID(baseline). Empty without a baseline.
    baseline: Optional[Cell] = None
    versus_baseline: dict[str, dict[Cell, Pair]] = dataclasses.field(default_factory=dict)

    def rows(self, schedule: str) -> Iterator[tuple[Cell, Scores]]:
        """One schedule's scores, cell by cell."""
        for cell, table in self.cells.items():
            if schedule in table.scores:
                yield cell, table.scores[schedule]


def sweep_plot(schedule: str, setting: str) -> Path:
    """``setting``: a sampler, or a sampler with its guidance weight (``Cell.setting``)."""
    return SWEEP_PLOTS_DIR / f"{schedule}_{setting}.tsv"


def write_sweep_metrics(m: SweepMetrics, schedules: Sequence[str], samplers: Sequence[str]) -> None:
    """metrics/sweep.json, and per schedule and setting the FID/KID-against-NFE table ``dvc plots`` draws."""
    settings = list(dict.fromkeys(cell.setting for cell in m.cells if cell.sampler in samplers))
    for name in schedules:
        for setting in settings:
            rows = [{"nfe": cell.nfe, "steps": cell.steps, **s.to_json()}
                    for cell, s in m.rows(name) if cell.setting == setting]
            _write_tsv(sweep_plot(name, setting), pd.DataFrame(rows))
    versus = ({"baseline": m.baseline.key, **{name: {cell.key: p.to_json() for cell, p in pairs.items()}
                                             for name, pairs in m.versus_baseline.items()}} if m.baseline else {})
    write_json(SWEEP_METRICS, {**m.anchors_json(), "eta": m.eta,
                               "cells": {cell.key: table.to_json() for cell, table in m.cells.items()},
                               "versus_baseline": versus})


def main_guidance(sample_guidance: float, sweep_guidance: Sequence[float]) -> float:
    """The guidance weight the sweep's findings are read at: the main setting's when the sweep has it, else the
    sweep's first (0 for unconditional models, whose only weight it is)."""
    return sample_guidance if sample_guidance in sweep_guidance else sweep_guidance[0]


def baseline_cell(sw: SweepConfig, guidance: float = 0.0) -> Optional[Cell]:
    """The sweep's reference cell for cross-sampler comparisons: DDPM at ``SweepConfig.baseline_budget`` (None
    without DDPM)."""
    return Cell("ddpm", sw.baseline_budget, guidance) if "ddpm" in sw.samplers else None


def read_sweep_metrics(text: Optional[str] = None) -> SweepMetrics:
    """metrics/sweep.json, or the same file's ``text`` (e.g. as git has it committed)."""
    d = _read_json(SWEEP_METRICS) if text is None else json.loads(text)
    cells = sorted(((Cell.from_key(k), ScoreTable.from_json(t)) for k, t in d["cells"].items()), key=lambda c: c[0])
    versus = dict(d.get("versus_baseline", {}))
    baseline = Cell.from_key(versus.pop("baseline")) if "baseline" in versus else None
    return SweepMetrics(**Anchored.anchors_from_json(d), eta=d["eta"], cells=dict(cells), baseline=baseline,
                        versus_baseline={name: {Cell.from_key(k): Pair(**p) for k, p in pairs.items()}
                                         for name, pairs in versus.items()})


# --- report: the write-up ---------------------------------------------------------------------------
REPORTS_DIR = Path("reports")  # the results tree: one folder per write-up, and its index README.md (git)
REPORT_DIR = REPORTS_DIR / "main"
REPORT = REPORT_DIR / "README.md"
REPORT_OUTS = (REPORT_DIR,)


# === The extended study (extended/dvc.yaml): its files lie under extended/, its write-up in reports/extended/ ==
EXTENDED_DIR = Path("extended")
EXTENDED_METRICS_DIR = EXTENDED_DIR / "metrics"
EXTENDED_PIPELINE = EXTENDED_DIR / "dvc.yaml"


@dataclass(frozen=True)
class Fid:
    """A FID with its jackknife std (the extended study's cells: no KID)."""

    fid: float
    fid_std: float


def _pair_key(a: str, b: str) -> str:
    return f"{a}-{b}"


# --- train_seeds: the models of the extra training seeds -------------------------------------------
SEED_MODELS_DIR = EXTENDED_DIR / "seed_models"
TRAIN_SEEDS_OUTS = (SEED_MODELS_DIR,)


def seed_checkpoint(schedule: str, seed: int) -> Path:
    return SEED_MODELS_DIR / schedule / f"seed_{seed}.pt"


# --- score_seeds: every seed's model sampled like the main setting, scored, verdicts per pair ------------
SEED_FEATURES_DIR = EXTENDED_DIR / "seed_features"
SEEDS_METRICS = EXTENDED_METRICS_DIR / "seeds.json"
SCORE_SEEDS_OUTS = (SEED_FEATURES_DIR, SEEDS_METRICS)


def seed_features(schedule: str, seed: int) -> Path:
    return SEED_FEATURES_DIR / schedule / f"seed_{seed}.npy"


@dataclass(frozen=True)
class SeedPair:
    """A pair of schedules over training seeds: FID(a) - FID(b) and its paired std at each seed, whether the
    main study's seed separates them, and the verdict over seeds (``replication.seed_verdict``)."""

    diffs: list[float]
    stds: list[float]
    separated_at_main: bool
    mean: float
    sd: float
    half_width: float
    verdict: str


@dataclass(frozen=True)
class SeedsMetrics:
    """extended/metrics/seeds.json. On disk: the fields, ``pairs`` keyed "<a>-<b>"."""

    seeds: list[int]
    schedules: list[str]
    sampler: str  # the main setting's
    steps: int
    num_images: int
    confidence: float  # of the seed verdicts' t interval
    fid: dict[str, list[float]]  # per schedule, one per seed
    fid_std: dict[str, list[float]]
    pairs: dict[tuple[str, str], SeedPair]

    def to_json(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "pairs"},
                "pairs": {_pair_key(a, b): dataclasses.asdict(p) for (a, b), p in self.pairs.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SeedsMetrics":
        names = d["schedules"]
        pairs = {}
        for key, p in d["pairs"].items():
            (a, b), = [(a, b) for a in names for b in names if _pair_key(a, b) == key]
            pairs[(a, b)] = SeedPair(**p)
        return cls(**{**d, "pairs": pairs})


def write_seeds_metrics(m: SeedsMetrics) -> None:
    write_json(SEEDS_METRICS, m.to_json())


def read_seeds_metrics() -> SeedsMetrics:
    return SeedsMetrics.from_json(_read_json(SEEDS_METRICS))


# --- train_longer: one schedule trained longer, its EMA model kept at every snapshot ---------------
LONGER_MODELS_DIR = EXTENDED_DIR / "longer_models"
LONGER_CHECKPOINT = LONGER_MODELS_DIR / "checkpoint.pt"  # the run itself (resumable)
TRAIN_LONGER_OUTS = (LONGER_MODELS_DIR,)


def longer_snapshot(step: int) -> Path:
    return LONGER_MODELS_DIR / f"step_{step}.pt"


# --- score_longer: every snapshot at every sweep setting -------------------------------------------
UNDERTRAINING_DIR = EXTENDED_DIR / "undertraining"
UNDERTRAINING_METRICS = EXTENDED_METRICS_DIR / "undertraining.json"
SCORE_LONGER_OUTS = (UNDERTRAINING_DIR, UNDERTRAINING_METRICS)


def undertraining_features(step: int, cell: Cell) -> Path:
    return UNDERTRAINING_DIR / f"step_{step}" / f"{cell.key}_features.npy"


@dataclass(frozen=True)
class Snapshot:
    """One snapshot of the longer run: its final training loss and every sweep cell's FID."""

    final_loss: float
    cells: dict[Cell, Fid]


@dataclass(frozen=True)
class LongerMetrics:
    """extended/metrics/undertraining.json: the longer run's snapshots at every sweep setting.

    On disk: ``cells: {"<snapshot>": {"final_loss", "<cell key>": {fid, fid_std}}}``,
    ``minus_ddpm: {"<sampler>": {"<NFE>": {"<snapshot>": Pair}}}`` (every sampler but DDPM against DDPM at the
    same NFE), ``overtakes: {"<sampler>": {"<NFE>": snapshot or null}}``,
    ``ddpm_gain: {"<NFE>": {"<snapshot>": Pair}}`` (DDPM's FID at the next snapshot minus at this one).
    """

    schedule: str
    num_images: int
    eta: float
    snapshots: list[int]  # training steps
    main_steps: int  # the main study's train.steps
    cells: dict[int, Snapshot]  # by snapshot
    minus_ddpm: dict[str, dict[int, dict[int, Pair]]]  # sampler -> NFE -> snapshot -> paired FID(sampler) - FID(DDPM)
    overtakes: dict[str, dict[int, int | None]]  # sampler -> NFE -> the snapshot from which it stays ahead beyond noise
    ddpm_gain: dict[int, dict[int, Pair]]  # NFE -> snapshot (all but the last) -> paired FID(next) - FID(this)

    def to_json(self) -> dict[str, Any]:
        def pairs(g: dict[int, Pair]) -> dict[str, Any]:
            return {str(step): p.to_json() for step, p in g.items()}

        return {"schedule": self.schedule, "num_images": self.num_images, "eta": self.eta, "snapshots": self.snapshots,
                "main_steps": self.main_steps,
                "cells": {str(step): {"final_loss": s.final_loss, **{c.key: dataclasses.asdict(f) for c, f in s.cells.items()}}
                          for step, s in self.cells.items()},
                "minus_ddpm": {sampler: {str(n): pairs(g) for n, g in by_nfe.items()}
                               for sampler, by_nfe in self.minus_ddpm.items()},
                "overtakes": {sampler: {str(n): v for n, v in by_nfe.items()} for sampler, by_nfe in self.overtakes.items()},
                "ddpm_gain": {str(n): pairs(g) for n, g in self.ddpm_gain.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "LongerMetrics":
        def pairs(g: dict[str, Any]) -> dict[int, Pair]:
            return {int(step): Pair(**p) for step, p in g.items()}

        cells = {int(step): Snapshot(c["final_loss"], {Cell.from_key(k): Fid(**f) for k, f in c.items() if k != "final_loss"})
                 for step, c in d["cells"].items()}
        return cls(d["schedule"], d["num_images"], d["eta"], d["snapshots"], d["main_steps"], cells,
                   {sampler: {int(n): pairs(g) for n, g in by_nfe.items()} for sampler, by_nfe in d["minus_ddpm"].items()},
                   {sampler: {int(n): v for n, v in by_nfe.items()} for sampler, by_nfe in d["overtakes"].items()},
                   {int(n): pairs(g) for n, g in d["ddpm_gain"].items()})


def write_undertraining_metrics(m: LongerMetrics) -> None:
    write_json(UNDERTRAINING_METRICS, m.to_json())


def read_undertraining_metrics() -> LongerMetrics:
    return LongerMetrics.from_json(_read_json(UNDERTRAINING_METRICS))


# --- score_cross: trained with A x sampled on B ---------------------------------------------------------
CROSS_DIR = EXTENDED_DIR / "cross"
CROSS_METRICS = EXTENDED_METRICS_DIR / "cross.json"
SCORE_CROSS_OUTS = (CROSS_DIR, CROSS_METRICS)


def cross_features(trained_with: str, sampled_on: str, cell: Cell) -> Path:
    return CROSS_DIR / cell.key / f"{trained_with}__{sampled_on}_features.npy"


@dataclass(frozen=True)
class Part:
    """One part of a schedule's advantage over the baseline (``replication.factorial_split``) and its jackknife std."""

    value: float
    std: float


@dataclass(frozen=True)
class CrossSetting:
    """The trained-with (row A) x sampled-on (column B) grid at one setting; every mapping is ``[A][B]``."""

    fid: dict[str, dict[str, float]]
    fid_std: dict[str, dict[str, float]]
    minus_own: dict[str, dict[str, Pair]]  # FID(A on B) - FID(A on A), paired
    clamped_steps: dict[str, dict[str, int]]  # B's steps outside A's trained range
    split: dict[str, dict[str, Part]]  # B -> total, training, sampling: B's advantage over the baseline

    def to_json(self) -> dict[str, Any]:
        nested = lambda g, f=lambda v: v: {a: {b: f(v) for b, v in row.items()} for a, row in g.items()}  # noqa: E731
        return {"fid": self.fid, "fid_std": self.fid_std, "minus_own": nested(self.minus_own, Pair.to_json),
                "clamped_steps": self.clamped_steps, "split": nested(self.split, dataclasses.asdict)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "CrossSetting":
        return cls(d["fid"], d["fid_std"], {a: {b: Pair(**p) for b, p in row.items()} for a, row in d["minus_own"].items()},
                   d["clamped_steps"], {b: {k: Part(**p) for k, p in parts.items()} for b, parts in d["split"].items()})


@dataclass(frozen=True)
class CrossMetrics:
    """extended/metrics/cross.json. On disk: ``settings`` keyed by the cell key ("ddpm_10")."""

    num_images: int
    eta: float
    schedules: list[str]
    baseline: str
    settings: dict[Cell, CrossSetting]

    def to_json(self) -> dict[str, Any]:
        return {"num_images": self.num_images, "eta": self.eta, "schedules": self.schedules, "baseline": self.baseline,
                "settings": {c.key: s.to_json() for c, s in self.settings.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "CrossMetrics":
        return cls(d["num_images"], d["eta"], d["schedules"], d["baseline"],
                   {Cell.from_key(k): CrossSetting.from_json(s) for k, s in d["settings"].items()})


def write_cross_metrics(m: CrossMetrics) -> None:
    write_json(CROSS_METRICS, m.to_json())


def read_cross_metrics() -> CrossMetrics:
    return CrossMetrics.from_json(_read_json(CROSS_METRICS))


# --- extended_report: the extended study's write-up -------------------------------------------------
EXTENDED_REPORT_DIR = REPORTS_DIR / "extended"  # beside the main write-up, in the results tree
EXTENDED_REPORT = EXTENDED_REPORT_DIR / "README.md"
EXTENDED_REPORT_OUTS = (EXTENDED_REPORT_DIR,)
