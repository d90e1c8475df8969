"""dvc.yaml against the code: outputs owned by pipeline/outputs.py, code deps equal to the real
import closure of each stage, no stage importing another, params that exist."""

import ast

import pytest
import yaml

from conftest import ROOT, default_params
from pipeline import lineage, outputs, stage_graph

DVC_YAML = ROOT / "dvc.yaml"
MAIN_OUTS = {"check": outputs.CHECK_OUTS, "prepare": outputs.PREPARE_OUTS, "reference": outputs.REFERENCE_OUTS,
             "train": outputs.TRAIN_OUTS, "sample": outputs.SAMPLE_OUTS, "evaluate": outputs.EVALUATE_OUTS, "likelihood": outputs.LIKELIHOOD_OUTS,
             "sweep": outputs.SWEEP_OUTS, "score_sweep": outputs.SCORE_SWEEP_OUTS, "report": outputs.REPORT_OUTS}
EXTENDED_OUTS = {"train_seeds": outputs.TRAIN_SEEDS_OUTS, "score_seeds": outputs.SCORE_SEEDS_OUTS,
                 "train_longer": outputs.TRAIN_LONGER_OUTS, "score_longer": outputs.SCORE_LONGER_OUTS,
                 "score_cross": outputs.SCORE_CROSS_OUTS, "extended_report": outputs.EXTENDED_REPORT_OUTS}
STAGE_OUTS = MAIN_OUTS | EXTENDED_OUTS


def dvc_stages():
    """Both pipelines' stages (dvc.yaml and extended/dvc.yaml)."""
    return stage_graph.dvc_stages()


def test_the_two_pipelines_hold_their_own_stages():
    assert set(yaml.safe_load(DVC_YAML.read_text())["stages"]) == set(MAIN_OUTS)
    extended = yaml.safe_load((ROOT / outputs.EXTENDED_PIPELINE).read_text())["stages"]
    assert set(extended) == set(EXTENDED_OUTS)
    # Run from the project root, so that every path in them reads like the main pipeline's.
    assert all(spec["wdir"] == ".." for spec in extended.values())
    # Every extended output lies under extended/ but its write-up, which is in the results tree; none is a main stage's.
    assert all(p.is_relative_to(outputs.EXTENDED_DIR) for s, outs in EXTENDED_OUTS.items() if s != "extended_report" for p in outs)
    assert outputs.EXTENDED_REPORT_OUTS == (outputs.REPORTS_DIR / "extended",)


def code_deps(spec) -> set[str]:
    return {d for d in stage_graph._names(spec["deps"]) if d.startswith(("src/", "pipeline/"))}


def test_every_stage_has_an_outputs_section():
    assert set(dvc_stages()) == set(STAGE_OUTS)


@pytest.mark.parametrize("stage", list(STAGE_OUTS))
def test_outputs_match_the_owning_section(stage):
    assert set(stage_graph.outs(dvc_stages()[stage])) == {str(p) for p in STAGE_OUTS[stage]}


def test_per_schedule_paths_lie_in_their_stage_outputs():
    cell = outputs.Cell("ddim", 10)
    for name in ("linear", "cosine"):
        assert outputs.checkpoint(name).is_relative_to(outputs.MODELS_DIR)
        assert outputs.train_history(name).is_relative_to(outputs.TRAIN_PLOTS_DIR)
        assert all(p.is_relative_to(outputs.SAMPLES_DIR) for p in (outputs.sample_images(name), *outputs.sample_pictures(name)))
        assert outputs.sweep_array(name, cell, "features").is_relative_to(outputs.SWEEP_DIR)
        assert outputs.sweep_plot(name, "ddim").is_relative_to(outputs.SWEEP_PLOTS_DIR)
    assert all(outputs.prepared_array(n).is_relative_to(outputs.PREPARED_DIR) for n in outputs.PREPARED_ARRAYS)
    assert outputs.seed_checkpoint("linear", 1).is_relative_to(outputs.SEED_MODELS_DIR)
    assert outputs.seed_features("linear", 1).is_relative_to(outputs.SEED_FEATURES_DIR)
    assert outputs.longer_snapshot(300).is_relative_to(outputs.LONGER_MODELS_DIR)
    assert outputs.LONGER_CHECKPOINT.is_relative_to(outputs.LONGER_MODELS_DIR)
    assert outputs.undertraining_features(300, cell).is_relative_to(outputs.UNDERTRAINING_DIR)
    assert outputs.cross_features("linear", "cosine", cell).is_relative_to(outputs.CROSS_DIR)


@pytest.mark.parametrize("stage", list(STAGE_OUTS))
def test_code_deps_are_the_import_closure(stage):
    """A stage lists every project file it runs, and nothing it does not run: editing one stage's code
    reruns that stage and the stages that run the same file, no others."""
    listed = code_deps(dvc_stages()[stage])
    closure = set(stage_graph.stage_code(stage))
    assert not closure - listed, f"{stage} imports project code dvc.yaml does not list: {sorted(closure - listed)}"
    assert not listed - closure, f"{stage} lists code it never imports: {sorted(listed - closure)}"


def test_the_closure_check_fails_on_an_unlisted_import(tmp_path):
    """The check above can fail: a stage module that gains an import of project code (here inside a
    function, as the CLI imports stages) changes its closure, and so no longer matches dvc.yaml."""
    import shutil

    (tmp_path / "extended").mkdir()
    for name in ("src", "pipeline", *stage_graph.PIPELINES):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    prepare = tmp_path / "pipeline" / "stages" / "prepare.py"
    prepare.write_text(prepare.read_text() + "\n\ndef later():\n    from ddpm_study import uncertainty\n")
    before, after = (set(stage_graph.stage_code("prepare", root)) for root in (ROOT, tmp_path))
    assert after - before == {"src/ddpm_study/uncertainty.py"} and not before - after


def test_no_stage_module_imports_another():
    entries = {name: stage_graph.entry_module(name) for name in dvc_stages()}
    stage_files = {e for e in entries.values() if e is not None}
    for name, entry in entries.items():
        if entry is not None:
            reached = stage_graph.closure([entry])
            assert reached & stage_files == {entry}, f"{name} imports {sorted(p.name for p in reached & stage_files - {entry})}"


def test_package_init_files_hold_only_a_docstring():
    """They run on every import but are left out of the closures: they must hold no code."""
    for init in [*(ROOT / "pipeline").rglob("__init__.py"), *(ROOT / "src").rglob("__init__.py")]:
        body = ast.parse(init.read_text()).body
        assert all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body), init


def test_library_never_imports_the_pipeline_or_mlflow():
    for path in (ROOT / "src" / "ddpm_study").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in ("pipeline", "mlflow", "dvc") for n in names), (path, names)


def test_training_code_fingerprint_covers_the_library_train_runs():
    """Code that DVC reruns `train` for is the library code whose change forbids resuming a checkpoint, but for
    the config module and the sampler registry: values, not the code that checks them, are what a model
    depends on, and no training step runs a sampler; so a new sampler or sampling parameter retrains nothing
    (DVC reruns `train`, which finds every checkpoint current)."""
    listed = {d for d in code_deps(dvc_stages()["train"]) if d.startswith("src/")}
    assert set(lineage.training_code()) <= listed
    assert listed - set(lineage.training_code()) == {"src/ddpm_study/config.py", "src/ddpm_study/samplers.py"}
    assert {"src/ddpm_study/training.py", "src/ddpm_study/unet.py", "src/ddpm_study/schedules.py"} <= listed


def test_upstream_follows_the_files():
    assert stage_graph.upstream("train") == ["check", "prepare"]
    assert stage_graph.upstream("score_sweep") == ["check", "prepare", "reference", "train", "sweep"]
    assert set(stage_graph.upstream("report")) == set(MAIN_OUTS) - {"report"}
    # The main study never waits for the extended one; the extended study builds on the main one.
    assert not any(set(stage_graph.upstream(s)) & set(EXTENDED_OUTS) for s in MAIN_OUTS)
    assert {"train", "sample", "reference"} <= set(stage_graph.upstream("score_seeds"))
    assert set(stage_graph.upstream("extended_report")) >= {"score_seeds", "score_longer", "score_cross", "train_longer", "train_seeds"}


def test_every_listed_param_exists():
    params = default_params(extended=True)
    for name, stage in dvc_stages().items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert part in node, f"stage {name}: param {key} not in params.yaml"
                node = node[part]


def test_stages_without_upstream_outputs_wait_for_the_params_gate():
    stages = dvc_stages()
    for name in ("prepare", "reference", "train"):
        assert str(outputs.PARAMS_OK) in stages[name]["deps"], name


def test_training_checkpoints_persist():
    assert dvc_stages()["train"]["outs"][0]["models"]["persist"] is True
    assert dvc_stages()["train_seeds"]["outs"][0]["extended/seed_models"]["persist"] is True
    assert dvc_stages()["train_longer"]["outs"][0]["extended/longer_models"]["persist"] is True


def test_the_parsed_graph_follows_an_edited_dvc_yaml_and_callers_cannot_change_it(tmp_path):
    """stage_graph caches each file's parse per version: an edit is seen at once, and a caller that
    changes the dict it got back does not change what the next caller gets."""
    (tmp_path / "dvc.yaml").write_text("stages:\n  a:\n    cmd: ddpm-study a\n")
    first = stage_graph.dvc_stages(tmp_path)
    first["a"]["cmd"] = "changed"
    assert stage_graph.dvc_stages(tmp_path) == {"a": {"cmd": "ddpm-study a"}}
    (tmp_path / "dvc.yaml").write_text("stages:\n  a:\n    cmd: ddpm-study a\n  bb:\n    cmd: ddpm-study bb\n")
    assert set(stage_graph.dvc_stages(tmp_path)) == {"a", "bb"}
