"""Strict params loading: every bad input is one ConfigError line naming the key and what is allowed."""

import copy

import pytest

from conftest import default_params
from ddpm_study.config import ConfigError, StudyConfig, fingerprint
from pipeline import lineage


def test_default_params_load():
    cfg = StudyConfig.from_dict(default_params())
    assert cfg.schedule == ("linear", "quadratic", "sigmoid", "cosine")
    assert cfg.image_shape == (1, 28, 28)


def test_schedule_as_single_name_or_list():
    p = default_params()
    p["schedule"] = "cosine"  # what `dvc exp run -S schedule=cosine` writes
    assert StudyConfig.from_dict(p).schedule == ("cosine",)
    p["schedule"] = ["linear", "cosine"]
    assert StudyConfig.from_dict(p).schedule == ("linear", "cosine")


def _set(p, key, value):
    *parents, last = key.split(".")
    d = p
    for k in parents:
        d = d[k]
    if value is DELETE:
        del d[last]
    else:
        d[last] = value


class _Delete:
    """Marks a key to remove; its repr is fixed so test ids are the same in every process (pytest-xdist)."""

    def __repr__(self) -> str:
        return "<deleted>"


DELETE = _Delete()

BAD = [
    # (key, value, words the message must contain)
    ("schedule", "exponential", ["schedule", "'exponential'", "linear, quadratic, sigmoid, cosine"]),
    ("schedule", ["linear", "bogus"], ["schedule", "'bogus'", "cosine"]),
    ("train.stepz", 10, ["train.stepz", "unknown key", "steps"]),
    ("train.steps", DELETE, ["train.steps", "missing key"]),
    ("train.steps", "many", ["train.steps", "'many'", "an integer"]),
    ("train.steps", 0, ["train.steps", "0", "> 0"]),
    ("train.batch_size", -4, ["train.batch_size", "-4", "> 0"]),
    ("train.lr", True, ["train.lr", "True", "a number"]),
    ("schedules.linear.beta_end", 1.5, ["schedules.linear.beta_end", "1.5", "(0, 1)"]),
    ("schedules.linear.beta_start", 0.0, ["schedules.linear.beta_start", "0.0", "(0, 1)"]),
    ("schedules.quadratic.beta_start", 0.05, ["schedules.quadratic.beta_end", "greater than beta_start"]),
    ("schedules.cosine.s", 0.0, ["schedules.cosine.s", "> 0"]),
    ("schedules.cosine.s", -0.1, ["schedules.cosine.s", "-0.1"]),
    ("sample.steps", 1001, ["sample.steps", "1001", "[1, diffusion.timesteps = 1000]"]),
    ("sample.steps", 0, ["sample.steps", "0"]),
    ("model.channel_mults", [1, 2, 2, 2], ["model.channel_mults", "28x28", "at most 3 levels"]),
    ("data.dataset", "imagenet", ["data.dataset", "'imagenet'", "fashion_mnist, mnist, cifar10"]),
    ("device", "tpu", ["device", "'tpu'", "auto, cpu, cuda"]),
    ("model.norm_groups", 5, ["model.norm_groups", "divisor"]),
    ("train.checkpoint_every", 30, ["train.checkpoint_every", "multiple of train.log_every"]),
    ("evaluate.kid_subset_size", 10_000, ["evaluate.kid_subset_size", "sample.num_images"]),
    ("diffusion.timesteps", 10, ["schedules.linear", "outside (0, 1)"]),
    ("tracking", "mlflow", ["tracking", "expected a mapping"]),
    ("evaluate.jackknife_groups", 1, ["evaluate.jackknife_groups", "1", "[2, sample.num_images = 2000]"]),
    ("evaluate.jackknife_groups", 6000, ["evaluate.jackknife_groups", "6000"]),
    ("evaluate.fid_inf_degree", 3, ["evaluate.fid_inf_degree", "3", "1 or 2"]),
    ("evaluate.fid_inf_fractions", [0.5, 1.0], ["evaluate.fid_inf_fractions", "[0.5, 1.0]", "more than evaluate.fid_inf_degree = 2"]),
    ("evaluate.fid_inf_fractions", [0.0, 0.5, 1.0], ["evaluate.fid_inf_fractions", "(0, 1]"]),
    ("sweep.samplers", ["ddpm", "euler"], ["sweep.samplers[1]", "'euler'", "ddpm, ddim"]),
    ("sweep.samplers", ["ddim", "ddim"], ["sweep.samplers", "distinct"]),
    ("sweep.nfe", [10, 0], ["sweep.nfe[1]", "0", "[1, diffusion.timesteps = 1000]"]),
    ("sweep.nfe", [], ["sweep.nfe", "non-empty"]),
    ("sweep.baseline_nfe", 1001, ["sweep.baseline_nfe", "1001", "[0, diffusion.timesteps = 1000]"]),
    ("sweep.baseline_nfe", -1, ["sweep.baseline_nfe", "-1"]),
    ("sweep.steps", [10], ["sweep.steps", "unknown key", "nfe"]),
    ("sample.sigma_max", -1.0, ["sample.sigma_max", "-1", ">= 0"]),
    ("sample.sigma_max", 0.001, ["sample.sigma_max", "0.001", "linear", "no timestep is left", "80 (EDM)"]),
    ("sweep.sigma_max", 0.001, ["sweep.sigma_max", "0.001", "no timestep is left"]),
    ("sweep.num_images", 5000, ["sweep.num_images", "5000", "sample.num_images = 2000"]),
    ("sweep.num_images", 20, ["sweep.num_images", "20", "evaluate.jackknife_groups) = 100"]),
    ("sweep.eta", -0.5, ["sweep.eta", ">= 0"]),
    ("sample.sampler", "euler", ["sample.sampler", "'euler'", "one of ddpm, ddim"]),
    ("sample.spacing", "log", ["sample.spacing", "'log'", "one of linspace, leading, trailing, quadratic, karras"]),
    ("sweep.spacing", "karras", ["sweep.spacing", "'karras' for schedule linear at 100 steps", "repeated timesteps"]),
    ("model.prediction", "x0", ["model.prediction", "'x0'", "one of eps, v"]),
    ("reproducible", "yes", ["reproducible", "'yes'"]),
    ("model.num_classes", 7, ["model.num_classes", "7", "0 (unconditional) or 10 (the classes of fashion_mnist)"]),
    ("model.num_classes", -1, ["model.num_classes", "-1", ">= 0"]),
    ("model.class_embedding", "concat", ["model.class_embedding", "'concat'", "one of multiply, add"]),
    ("train.cond_drop_prob", 1.0, ["train.cond_drop_prob", "1.0", "[0, 1)"]),
    ("train.processes", 0, ["train.processes", "0", ">= 1"]),
    ("train.processes", 3, ["train.processes", "3", "a divisor of train.batch_size (64)"]),
    ("train.precision", "fp16", ["train.precision", "'fp16'", "one of bf16, fp32"]),
    ("sample.guidance", 1.0, ["sample.guidance", "1.0", "0 for an unconditional model"]),
    ("sweep.guidance", [0.0, 3.0], ["sweep.guidance", "[0] for an unconditional model"]),
    # The schedules section is checked against the registry's parameter specs.
    ("schedules.exponential", {"rate": 1.0}, ["schedules.exponential", "unknown key", "linear, quadratic, sigmoid, cosine"]),
    ("schedules.cosine", DELETE, ["schedules.cosine", "missing key"]),
    ("schedules.cosine.offset", 0.1, ["schedules.cosine.offset", "unknown key", "s (default 0.008), max_beta (default 0.999)"]),
    ("schedules.sigmoid.sigmoid_range", DELETE, ["schedules.sigmoid.sigmoid_range", "missing key", "sigmoid_range (default 6)"]),
    ("schedules.sigmoid.sigmoid_range", -1.0, ["schedules.sigmoid.sigmoid_range", "-1.0", "> 0"]),
    ("schedules.cosine.max_beta", 1.0, ["schedules.cosine.max_beta", "1.0", "(0, 1)"]),
    ("schedules.linear.beta_end", "big", ["schedules.linear.beta_end", "'big'", "a number"]),
]


# A class-conditional configuration's own checks (model.num_classes = 10 set first).
BAD_CONDITIONAL = [
    ("sample.guidance", -2.0, ["sample.guidance", "-2.0", ">= -1"]),
    ("sweep.guidance", [0.0, -3.0], ["sweep.guidance[1]", "-3.0", ">= -1"]),
    ("sweep.guidance", [1.0, 1.0], ["sweep.guidance", "distinct"]),
    ("sample.num_images", 15, ["sample.num_images", "15", "2 * model.num_classes = 20"]),
]


@pytest.mark.parametrize("key,value,words", BAD_CONDITIONAL, ids=[f"{k}={v!r}"[:40] for k, v, _ in BAD_CONDITIONAL])
def test_bad_conditional_input_is_one_clear_line(key, value, words):
    p = copy.deepcopy(default_params())
    _set(p, "model.num_classes", 10)
    StudyConfig.from_dict(p)  # the conditional defaults are valid
    _set(p, key, value)
    with pytest.raises(ConfigError) as err:
        StudyConfig.from_dict(p)
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


@pytest.mark.parametrize("key,value,words", BAD, ids=[f"{k}={v!r}"[:40] for k, v, _ in BAD])
def test_bad_input_is_one_clear_line(key, value, words):
    p = copy.deepcopy(default_params())
    _set(p, key, value)
    with pytest.raises(ConfigError) as err:
        StudyConfig.from_dict(p)
    message = str(err.value)
    assert "\n" not in message
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"


def test_lineage_ignores_other_schedules_and_tracking():
    p = default_params()
    a = StudyConfig.from_dict(p)
    p2 = copy.deepcopy(p)
    p2["schedules"]["cosine"]["s"] = 0.01
    p2["tracking"]["experiment"] = "other"
    b = StudyConfig.from_dict(p2)
    assert fingerprint(lineage.training(a, "linear")) == fingerprint(lineage.training(b, "linear"))
    assert fingerprint(lineage.training(a, "cosine")) != fingerprint(lineage.training(b, "cosine"))
    p3 = copy.deepcopy(p)
    p3["sample"]["steps"] = 50
    c = StudyConfig.from_dict(p3)
    assert fingerprint(lineage.training(a, "linear")) == fingerprint(lineage.training(c, "linear"))
    assert fingerprint(lineage.schedule(a, "linear")) != fingerprint(lineage.schedule(c, "linear"))
    p4 = copy.deepcopy(p)
    p4["sweep"]["nfe"] = [5, 500]
    p4["evaluate"]["jackknife_groups"] = 10
    p4["likelihood"]["strata"], p4["likelihood"]["exact_terms"] = 1000, 0
    d = StudyConfig.from_dict(p4)  # evaluation settings (bits/dim included) never invalidate trained models
    assert fingerprint(lineage.training(a, "linear")) == fingerprint(lineage.training(d, "linear"))
    assert fingerprint(lineage.schedule(a, "linear")) != fingerprint(lineage.schedule(d, "linear"))


def test_lineage_holds_the_training_code_fingerprint_and_no_tracking():
    cfg = StudyConfig.from_dict(default_params())
    for d in (lineage.training(cfg, "cosine"), lineage.schedule(cfg, "cosine"), lineage.execution(cfg)):
        assert d["code"] == lineage.code_fingerprint() and "tracking" not in d
    assert list(lineage.training(cfg, "cosine")["schedules"]) == ["cosine"]
    assert "source_dir" not in lineage.training(cfg, "cosine")["data"]
    assert "sample" in lineage.schedule(cfg, "cosine") and "sample" not in lineage.training(cfg, "cosine")


def test_every_registered_schedule_ships_its_defaults_in_params_yaml():
    """params.yaml's schedules section holds each registered schedule with its spec's defaults."""
    from ddpm_study.schedules import SCHEDULES

    assert default_params()["schedules"] == {name: spec.defaults() for name, spec in SCHEDULES.items()}


def test_betas_come_from_the_registry_with_the_configured_parameters():
    import numpy as np

    from ddpm_study.schedules import get_betas

    p = default_params()
    p["schedules"]["sigmoid"]["sigmoid_range"] = 3.0
    cfg = StudyConfig.from_dict(p)
    np.testing.assert_array_equal(cfg.betas("sigmoid"), get_betas("sigmoid", 1000, beta_start=1e-4, beta_end=0.02,
                                                                  sigmoid_range=3.0))
