"""dvc.yaml and pipeline/paths.py name the same outputs; dvc.yaml lists params that exist."""

from pathlib import Path

import yaml

from conftest import ROOT, default_params
from pipeline import paths


def dvc_stages():
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _names(entries):
    for e in entries:
        yield next(iter(e)) if isinstance(e, dict) else e


def test_outputs_match_paths_module():
    stages = dvc_stages()
    outs = {s: set(_names(stages[s].get("outs", []))) | set(_names(stages[s].get("metrics", [])))
            | set(_names(stages[s].get("plots", []))) for s in stages}
    assert outs["check"] == {str(paths.PARAMS_OK)}
    assert outs["prepare"] == {str(paths.PREPARED_DIR)}
    assert outs["reference"] == {str(paths.REFERENCE_DIR)}
    assert outs["train"] == {str(paths.MODELS_DIR), str(paths.TRAIN_METRICS), str(paths.TRAIN_PLOTS_DIR)}
    assert outs["sample"] == {str(paths.SAMPLES_DIR)}
    assert outs["evaluate"] == {str(paths.EVALUATE_METRICS)}
    assert outs["sweep"] == {str(paths.SWEEP_DIR)}
    assert outs["score_sweep"] == {str(paths.SWEEP_METRICS), str(paths.SWEEP_PLOTS_DIR)}
    assert outs["report"] == {str(paths.REPORTS_DIR)}
    for name in ("linear", "cosine"):
        assert paths.checkpoint(name).is_relative_to(paths.MODELS_DIR)
        assert paths.sample_images(name).is_relative_to(paths.SAMPLES_DIR)
        assert paths.sweep_array(name, "ddim", 10, "features").is_relative_to(paths.SWEEP_DIR)
        assert paths.sweep_plot(name, "ddim").is_relative_to(paths.SWEEP_PLOTS_DIR)


def test_every_listed_param_exists():
    params = default_params()
    for name, stage in dvc_stages().items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert part in node, f"stage {name}: param {key} not in params.yaml"
                node = node[part]


def test_stages_without_upstream_outputs_wait_for_the_params_gate():
    stages = dvc_stages()
    for name in ("prepare", "reference", "train"):
        assert str(paths.PARAMS_OK) in stages[name]["deps"], name


def test_train_code_deps_match_the_lineage_fingerprint():
    """Code that DVC reruns `train` for is exactly the code whose change forbids resuming a checkpoint."""
    from pipeline.lineage import TRAINING_CODE

    deps = {d for d in dvc_stages()["train"]["deps"] if d.startswith("src/")}
    assert deps == {f"src/ddpm_study/{Path(m.__file__).name}" for m in TRAINING_CODE}


def test_training_checkpoints_persist():
    assert dvc_stages()["train"]["outs"][0]["models"]["persist"] is True
