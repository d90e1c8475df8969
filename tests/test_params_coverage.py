"""Params follow the code: each stage's `params:` in both dvc.yaml files covers exactly the parameter keys
its code reads, recorded by attribute access on the typed configuration (``pipeline.params.recording``)
during real tiny runs of every stage: a class-conditional `dvc repro` (guidance, DDIM, a two-sampler sweep)
and then the unconditional model with `dvc repro extended/dvc.yaml`, so that both branches are read. A key
the code reads but `params:` misses (the `train.precision` of old: `dvc exp run -S train.precision=fp32`
did not retrain) fails, and so does a listed key no code reads (a change would rerun a stage for nothing)."""

import json

import pytest
import yaml

from conftest import make_repo, sh, tiny_params
from pipeline import params, stage_graph

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def read_keys(tmp_path_factory, torch_home, fashion_mnist_dir):
    """stage -> the parameter keys its code read in the runs above."""
    p = tiny_params()
    p["model"]["num_classes"] = 10
    p["sample"].update(sampler="ddim", guidance=1.0)
    p["sweep"].update(samplers=["ddpm", "ddim"], guidance=[0.0, 1.0])
    repo, env = make_repo(tmp_path_factory.mktemp("coverage"), p, torch_home)
    folder = repo.parent / "read"
    env[params.READ_ENV] = str(folder)
    sh("dvc repro", repo, env)
    q = yaml.safe_load((repo / "params.yaml").read_text())  # the extended study needs an unconditional model
    q["model"]["num_classes"], q["sample"]["guidance"], q["sweep"]["guidance"] = 0, 0.0, [0.0]
    (repo / "params.yaml").write_text(yaml.safe_dump(q, sort_keys=False))
    sh("dvc repro extended/dvc.yaml", repo, env)
    return {f.stem: set(json.loads(f.read_text())) for f in folder.glob("*.json")}


def covers(entry: str, key: str) -> bool:
    """A `params:` entry (a key or a whole section, e.g. `schedules`) covers ``key``."""
    return key == entry or key.startswith(entry + ".")


# The gate reads params.yaml whole (a file dep), so it has no `params:` to compare.
STAGES = [s for s, spec in stage_graph.dvc_stages().items() if "params.yaml" not in stage_graph._names(spec["deps"])]


@pytest.mark.parametrize("stage", STAGES)
def test_params_are_exactly_what_the_stage_reads(stage, read_keys):
    listed = stage_graph._names(stage_graph.dvc_stages()[stage].get("params"))
    read = read_keys[stage]
    assert not [k for k in read if not any(covers(e, k) for e in listed)], f"{stage} reads keys dvc.yaml does not list"
    assert not [e for e in listed if not any(covers(e, k) for k in read)], f"{stage} lists keys its code never reads"


def test_every_stage_ran_and_recorded(read_keys):
    assert set(read_keys) == set(stage_graph.dvc_stages())
