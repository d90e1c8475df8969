"""pipeline/outputs.py: each file's typed writer and reader agree, and the on-disk layout is the one
earlier runs committed (metrics/*.json as `dvc metrics show` prints them)."""

import json

import numpy as np
import pytest

from conftest import default_params
from ddpm_study.config import StudyConfig
from pipeline import outputs
from pipeline.outputs import Cell, Pair, Scores, ScoreTable


def scores(fid):
    return Scores(fid=fid, kid_mean=0.01, kid_std=0.002, fid_std=1.5)


def table():
    return ScoreTable({"linear": scores(60.0), "cosine": scores(55.5)},
                      {("linear", "cosine"): Pair(diff=4.5, std=1.0, within_noise=False)})


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cell_key_round_trips_and_orders_by_steps():
    assert Cell("ddim", 10).key == "ddim_10" and Cell.from_key("ddim_10") == Cell("ddim", 10)
    assert outputs.sweep_cells(["ddpm", "ddim"], [50, 10]) == [Cell("ddpm", 10), Cell("ddpm", 50),
                                                              Cell("ddim", 10), Cell("ddim", 50)]
    assert sorted([Cell("ddim", 100), Cell("ddim", 20)]) == [Cell("ddim", 20), Cell("ddim", 100)]  # not "100" < "20"


def test_the_baseline_budget_adds_a_ddpm_cell_only():
    """sweep.baseline_nfe runs DDPM (only) at one more budget, the cell every other is paired with; 0 = the most
    NFE of the grid; a budget already in the grid adds nothing. The stages' cells follow the config's budgets."""
    def sweep(samplers, nfe, baseline_nfe):
        p = default_params()
        p["sweep"].update(samplers=samplers, nfe=nfe, baseline_nfe=baseline_nfe)
        return StudyConfig.from_dict(p).sweep

    sw = sweep(["ddim", "ddpm"], [20, 5], 100)
    assert (sw.budgets("ddpm"), sw.budgets("ddim"), sw.all_budgets) == ([5, 20, 100], [5, 20], [5, 20, 100])
    assert outputs.sweep_grid(sw) == [Cell("ddim", 5), Cell("ddim", 20), Cell("ddpm", 5), Cell("ddpm", 20),
                                      Cell("ddpm", 100)]
    assert outputs.baseline_cell(sw) == Cell("ddpm", 100) and outputs.baseline_cell(sw, 3.0) == Cell("ddpm", 100, 3.0)
    same = sweep(["ddpm", "ddim"], [10, 100], 100)
    assert outputs.sweep_grid(same) == outputs.sweep_cells(["ddpm", "ddim"], [10, 100])
    assert outputs.baseline_cell(sweep(["ddpm", "ddim"], [10, 20], 0)) == Cell("ddpm", 20)
    assert outputs.baseline_cell(sweep(["ddim"], [10, 20], 100)) is None


def test_a_cell_is_a_budget_of_network_calls():
    """10 NFE: 10 one-call steps, or 5 Heun steps (9 calls: the last step makes one); a sampler whose name holds
    an underscore keeps it in the key."""
    assert (Cell("ddpm", 10).steps, Cell("ddpm", 10).calls) == (10, 10)
    assert (Cell("ode_clip", 10).steps, Cell("ode_clip", 10).calls) == (5, 9)
    assert (Cell("ode", 5).steps, Cell("ode", 5).calls) == (3, 5)
    assert (Cell("ode", 1).steps, Cell("ode", 1).calls) == (1, 1)
    for cell in (Cell("ode_clip", 10), Cell("ode_clip", 20, -1.0), Cell("dpmpp2m", 5, 3.0)):
        assert Cell.from_key(cell.key) == cell


def test_pair_either_order():
    assert table().pair("cosine", "linear") == Pair(diff=-4.5, std=1.0, within_noise=False)


def test_evaluate_metrics_round_trip_and_layout(in_tmp):
    m = outputs.EvaluateMetrics(num_images=500, jackknife_groups=50, real_vs_real=scores(37.8),
                                ceilings={"gaussian_noise": scores(400.0), "mean_image": scores(300.0)}, table=table())
    outputs.write_evaluate_metrics(m)
    assert outputs.read_evaluate_metrics() == m
    on_disk = json.loads(outputs.EVALUATE_METRICS.read_text())
    assert set(on_disk) == {"num_images", "jackknife_groups", "real_vs_real", "ceilings", "linear", "cosine", "pairs"}
    assert on_disk["linear"] == {"fid": 60.0, "fid_std": 1.5, "kid_mean": 0.01, "kid_std": 0.002, "precision": None,
                                 "precision_std": None, "recall": None, "recall_std": None}
    assert on_disk["pairs"] == {"linear-cosine": {"diff": 4.5, "std": 1.0, "within_noise": False}}


def test_sweep_metrics_round_trip_layout_and_plots(in_tmp):
    cells = {Cell("ddpm", 10): table(), Cell("ddpm", 100): table(), Cell("ddim", 10): table()}
    versus = {name: {c: Pair(diff=float(i), std=1.0, within_noise=i < 2) for i, c in enumerate(cells)}
              for name in ("linear", "cosine")}
    m = outputs.SweepMetrics(num_images=200, jackknife_groups=50, real_vs_real=scores(45.0), ceilings={}, eta=0.0,
                             cells=cells, baseline=Cell("ddpm", 100), versus_baseline=versus)
    outputs.write_sweep_metrics(m, ["linear", "cosine"], ["ddpm", "ddim"])
    back = outputs.read_sweep_metrics()
    assert back == m and back.cells == cells and back.eta == 0.0 and back.real_vs_real == m.real_vs_real
    assert json.loads(outputs.SWEEP_METRICS.read_text())["versus_baseline"]["baseline"] == "ddpm_100"
    assert sorted(json.loads(outputs.SWEEP_METRICS.read_text())["cells"]) == ["ddim_10", "ddpm_10", "ddpm_100"]
    assert [c.nfe for c, _ in back.rows("cosine") if c.sampler == "ddpm"] == [10, 100]
    plot = outputs.sweep_plot("cosine", "ddpm").read_text().splitlines()
    assert plot[0] == "nfe\tsteps\tfid\tkid_mean\tkid_std\tfid_std\tprecision\tprecision_std\trecall\trecall_std" and [r.split("\t")[0] for r in plot[1:]] == ["10", "100"]


def test_train_outputs_round_trip(in_tmp):
    rows = [{"step": 2, "loss": 0.5, "lr": 1e-3, "images_per_s": 100.0, "loss_bucket_0": 0.4, "loss_bucket_1": None},
            {"step": 4, "loss": 0.25, "lr": 1e-3, "images_per_s": 110.0, "loss_bucket_0": None, "loss_bucket_1": 0.3}]
    outputs.write_train_history("cosine", rows)
    assert outputs.read_train_history("cosine") == rows  # an empty bucket reads back as None, not NaN
    summary = outputs.TrainSummary(final_loss=0.25, train_time_s=3.0, steps=4, alpha_bar_T=1e-9, log_snr_max=10.0,
                                   log_snr_min=-20.0)
    outputs.write_train_metrics({"cosine": summary})
    assert outputs.read_train_metrics() == {"cosine": summary}


def test_arrays_and_infos_round_trip(in_tmp):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 1, 28, 28)
    outputs.write_sample_images("linear", images)
    np.testing.assert_array_equal(outputs.read_sample_images("linear"), images)
    info = outputs.SampleInfo(sampler="ddpm", steps=10, eta=0.0, num_images=2, sample_time_s=1.5)
    outputs.write_sample_info("linear", info)
    assert outputs.read_sample_info("linear") == info
    outputs.write_sweep_cell("linear", Cell("ddim", 5), images, images[None], np.ones((2, 4), np.float32))
    np.testing.assert_array_equal(outputs.read_sweep_array("linear", Cell("ddim", 5), "trajectory"), images[None])
    with pytest.raises(ValueError, match="images, trajectory, features"):
        outputs.sweep_array("linear", Cell("ddim", 5), "logits")


@pytest.mark.parametrize("kind", ["seeds", "undertraining", "cross"])
def test_the_extended_metric_files_read_into_their_dataclasses_and_back_unchanged(kind):
    """The committed extended/metrics/*.json through their typed readers and writers' JSON, key for key."""
    import json

    from conftest import ROOT

    cls = {"seeds": outputs.SeedsMetrics, "undertraining": outputs.LongerMetrics, "cross": outputs.CrossMetrics}[kind]
    d = json.loads((ROOT / outputs.EXTENDED_METRICS_DIR / f"{kind}.json").read_text())
    m = cls.from_json(d)
    assert json.dumps(m.to_json(), sort_keys=True) == json.dumps(d, sort_keys=True)
    if kind == "undertraining":  # typed keys: snapshots and sampling steps are ints, cells are Cells
        assert set(m.cells) == set(m.snapshots) and all(isinstance(c, Cell) for c in m.cells[m.snapshots[0]].cells)
        assert all(isinstance(p, Pair) for by in m.minus_ddpm.values() for g in by.values() for p in g.values())
        assert all(isinstance(p, Pair) for g in m.ddpm_gain.values() for p in g.values())
    if kind == "seeds":
        assert all(len(p.diffs) == len(m.seeds) for p in m.pairs.values()) and all(isinstance(k, tuple) for k in m.pairs)
