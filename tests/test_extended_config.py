"""The `extended` section of params.yaml: strict, checked against the study it extends, read only by
the extended study and the `check` gate (never by a main stage's code)."""

import copy

import pytest
import yaml

from conftest import default_params
from ddpm_study.config import StudyConfig
from ddpm_study.errors import ConfigError
from ddpm_study.extended import ExtendedConfig
from pipeline import extended_params, lineage, stage_graph


def _config(**changes):
    p = default_params(extended=True)
    study = StudyConfig.from_dict({k: v for k, v in p.items() if k != "extended"})
    ext = copy.deepcopy(p["extended"])
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        ext[section][key] = value
    cfg = ExtendedConfig.from_dict(ext, study)
    cfg.require_runnable(study)
    return cfg


def test_the_committed_section_is_valid_and_lists_the_seeds():
    ext = _config()
    assert ext.seeds.seeds(0) == list(range(ext.seeds.count)) and ext.seeds.seeds(5)[0] == 5


@pytest.mark.parametrize("change, message", [
    ({"seeds.count": 0}, "extended.seeds.count: invalid value 0; expected an integer >= 1"),
    ({"seeds.schedules": ["linear", "warped"]}, "extended.seeds.schedules[1]: invalid value 'warped'; expected one of linear, quadratic"),
    ({"seeds.schedules": []}, "extended.seeds.schedules: invalid value []"),
    ({"longer.schedule": "warped"}, "extended.longer.schedule: invalid value 'warped'; expected one of linear"),
    ({"longer.snapshots": [600, 300]}, "extended.longer.snapshots: invalid value [600, 300]; expected a non-empty, strictly increasing"),
    ({"longer.snapshots": [310]}, "extended.longer.snapshots[0]: invalid value 310; expected a multiple of train.log_every = 20"),
    ({"cross.samplers": ["euler"]}, "extended.cross.samplers[0]: invalid value 'euler'; expected one of ddpm, ddim"),
    ({"cross.steps": [0]}, "extended.cross.steps[0]: invalid value 0; expected an integer >= 1"),
    ({"cross.steps": [1001]}, "extended.cross.steps[0]: invalid value 1001; expected an integer in [1, diffusion.timesteps = 1000]"),
    ({"cross.steps": "10"}, "extended.cross.steps: invalid value '10'; expected a list of an integer"),
])
def test_a_bad_value_names_its_key_and_the_valid_choices(change, message):
    with pytest.raises(ConfigError) as err:
        _config(**change)
    assert str(err.value).startswith(message), str(err.value)


def test_an_unknown_or_missing_key_is_named(tmp_path):
    p = default_params(extended=True)
    p["extended"]["seeds"]["runs"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match=r"^extended\.seeds\.runs: unknown key; valid keys in extended\.seeds: count, schedules"):
        extended_params.load(tmp_path / "params.yaml")
    del p["extended"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match=r"^extended: missing key"):
        extended_params.load(tmp_path / "params.yaml")


@pytest.mark.parametrize("key, value, message", [
    ("schedule", "cosine", r"extended\.seeds\.schedules\[0\]: invalid value 'linear'; expected one of the schedules "
                           r"this study trains \(schedule: cosine\)"),
    ("train.log_every", 7, r"extended\.longer\.snapshots\[0\]: invalid value 500; expected a multiple of train\.log_every = 7"),
    ("diffusion.timesteps", 50, r"extended\.cross\.steps\[1\]: invalid value 100; expected an integer in \[1, diffusion\.timesteps = 50\]"),
])
def test_a_main_study_experiment_passes_the_gate_the_extended_stages_refuse_it(tmp_path, key, value, message):
    """`dvc exp run -S schedule=cosine` (or another main-study value the extended section does not fit)
    must pass the `check` gate; the extended stages refuse to run on it, naming the key."""
    p = default_params(extended=True)
    section, _, name = key.rpartition(".")
    (p[section] if section else p)[name] = value
    if key == "train.log_every":
        p["train"]["checkpoint_every"] = 7
    if key == "diffusion.timesteps":  # a shorter process: the main study's step counts fit, the grid's 100 does not
        p["sample"]["steps"], p["sweep"]["nfe"], p["extended"]["cross"]["steps"] = 50, [10, 50], [10, 100]
        p["sweep"]["baseline_nfe"] = 0  # DDPM's baseline at the largest of sweep.nfe
        p["likelihood"]["strata"] = 25  # of the 50 - likelihood.exact_terms sampled terms
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    extended_params.load(tmp_path / "params.yaml", gate=True)
    with pytest.raises(ConfigError, match="^" + message):
        extended_params.load(tmp_path / "params.yaml")


def test_no_main_stage_runs_the_extended_configuration():
    """Otherwise a change to it would change the training code fingerprint and retrain the main models."""
    for stage in yaml.safe_load((stage_graph.ROOT / "dvc.yaml").read_text())["stages"]:
        code = stage_graph.stage_code(stage)
        if stage != "check":
            assert "src/ddpm_study/extended.py" not in code and "pipeline/extended_params.py" not in code, stage
    assert "src/ddpm_study/extended.py" not in lineage.training_code()
