"""End to end: the real `dvc repro` and `dvc exp run` on a tiny configuration in a temporary git
repository, with the real Fashion-MNIST files, Inception weights and MLflow sqlite store.

The study runs once per module (``studied``, committed); every test starts from that committed state
(``study`` resets the workspace to it), so each test runs alone or in any order."""

import json
import re

import numpy as np

import pytest

from conftest import ROOT, make_repo, mlflow_runs, sh, tiny_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studied(tmp_path_factory, torch_home, fashion_mnist_dir):
    """A repository in which `dvc repro` ran the tiny study, its results committed."""
    params = tiny_params()
    params["sweep"].update(samplers=["ddpm", "ddim"], nfe=[2, 4], baseline_nfe=6)  # DDPM only at 6
    repo, env = make_repo(tmp_path_factory.mktemp("study"), params, torch_home)
    sh("dvc repro", repo, env)
    sh("git add -A && git commit -qm study", repo, env)
    return repo, env


@pytest.fixture
def study(studied):
    """The committed study, whatever an earlier test applied to the workspace (`dvc exp run` does)."""
    repo, env = studied
    # The main pipeline's outputs: the extended study's stages have not run here (`dvc checkout` of
    # everything would fail on their missing outputs, as on any clone whose cache lacks them).
    sh("git reset -q --hard && dvc checkout --force -q dvc.yaml", repo, env)
    return repo, env


def test_dvc_repro_runs_the_study(study):
    repo, env = study
    train = json.loads((repo / "metrics/train.json").read_text())
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    schedules = ["linear", "quadratic", "sigmoid", "cosine"]
    assert sorted(train) == sorted(schedules)
    assert train["cosine"]["alpha_bar_T"] < train["linear"]["alpha_bar_T"] < train["quadratic"]["alpha_bar_T"]
    for name in schedules:
        assert evaluate[name]["fid"] > 0 and train[name]["steps"] == 8
        assert (repo / f"reports/main/samples_{name}.png").is_file() and (repo / f"reports/main/denoising_{name}.gif").is_file()
    assert evaluate["num_images"] == 24 and evaluate["real_vs_real"]["fid"] > 0
    # Spreads, paired differences and the trivial-generator ceilings beside every FID.
    assert all(evaluate[n]["fid_std"] > 0 for n in schedules) and evaluate["real_vs_real"]["fid_std"] > 0
    assert len(evaluate["pairs"]) == 6 and {"diff", "std", "within_noise"} <= set(evaluate["pairs"]["linear-cosine"])
    assert set(evaluate["ceilings"]) == {"gaussian_noise", "mean_image"}
    # Precision and recall with jackknife stds beside every FID (torch-fidelity's values: tests/test_precision_recall.py).
    for row in (*(evaluate[n] for n in schedules), evaluate["real_vs_real"]):
        assert 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1 and row["precision_std"] >= 0, row
    sweep = json.loads((repo / "metrics/sweep.json").read_text())
    assert sweep["num_images"] == 12 and sorted(sweep["cells"]) == ["ddim_2", "ddim_4", "ddpm_2", "ddpm_4", "ddpm_6"]
    for cell in sweep["cells"].values():
        assert all(cell[n]["fid"] > 0 and cell[n]["fid_std"] > 0 for n in schedules) and len(cell["pairs"]) == 6
    assert (repo / "sweep/cosine/ddim_4_trajectory.npy").is_file() and (repo / "plots/sweep/cosine_ddim.tsv").is_file()
    # Every cell against DDPM at sweep.baseline_nfe (a cell only DDPM runs), paired per schedule; the write-up names
    # the cheapest match, and its tables mark the cells the grid leaves out.
    versus = sweep["versus_baseline"]
    assert versus["baseline"] == "ddpm_6" and all(sorted(versus[n]) == sorted(sweep["cells"]) for n in schedules)
    assert versus["linear"]["ddpm_6"] == {"diff": 0.0, "std": 0.0, "within_noise": True, "diff_inf": 0.0, "std_inf": 0.0}
    # FID∞ with its paired jackknife std beside every FID but the ceilings', in every table.
    for row in (*(evaluate[n] for n in schedules), evaluate["real_vs_real"], *(c[n] for c in sweep["cells"].values()
                                                                                for n in schedules)):
        assert np.isfinite(row["fid_inf"]) and row["fid_inf_std"] > 0, row
    assert "fid_inf" not in evaluate["ceilings"]["mean_image"] and "std_inf" in evaluate["pairs"]["linear-cosine"]
    # Bits/dim of every model on the same test images, paired.
    bits = json.loads((repo / "metrics/likelihood.json").read_text())
    assert bits["images"] == 8 and bits["strata"] == 5 and sorted(bits["schedules"]) == sorted(schedules)
    assert all(b["bpd"] > b["prior"] >= 0 and b["bpd_std"] > 0 for b in bits["schedules"].values())
    assert len(bits["pairs"]) == 6
    report = (repo / "reports/main/README.md").read_text()
    assert "| cosine" in report and "schedules.png" in report and "real vs real" in report
    for part in ("## Conclusions", "## Protocol", "fid_vs_nfe.png", "loss_by_timestep.png", "same_noise.png",
                 "trajectory.png"):
        assert part in report, part
    # Verdicts computed from the metrics: a winner with its FID, each other schedule placed against it,
    # and the literature check answered for both samplers.
    main = next(line for line in report.splitlines() if line.startswith("- **At the study's main setting**"))
    assert re.search(r"\*\*(linear|quadratic|sigmoid|cosine)\*\* has the lowest FID \(\d+\.\d ± \d+\.\d\)", main), main
    assert main.count("within noise of it") + main.count("worse beyond noise") >= 1, main
    assert re.search(r"- DDPM: FID\(linear\) − FID\(cosine\) = -?\d+\.\d ± \d+\.\d at 2 NFE", report)
    assert "**The cheapest setting that matches DDPM at 6 NFE**" in report and "**Precision / recall**" in report
    assert "has the lowest FID∞" in report and "**Bits/dim**" in report and "## Bits/dim" in report
    assert re.search(r"cosine − linear = -?\d+\.\d{3} ± \d+\.\d{3} bits/dim", report)
    assert re.search(r"FID\(DDIM\) − FID\(DDPM\) at 10 NFE|DDIM \(Song et al\. 2021", report) is None  # no 10-NFE cell here
    assert re.search(r"- DDIM: FID\(linear\) − FID\(cosine\) = .* — (we do \*\*not\*\*|our numbers|cosine leads)", report)
    assert any(line.startswith("| linear") and "DDIM" in line and line.rstrip(" |").endswith("–")
               for line in report.splitlines()), "DDIM's row has no 6-NFE cell"
    for figure in ("fid_vs_nfe.png", "same_noise.png", "trajectory.png", "sweep.csv"):
        assert (repo / "reports/main" / figure).is_file(), figure

    shown = sh("dvc metrics show --json", repo, env).stdout
    assert "fid" in shown and "final_loss" in shown
    status = json.loads(sh("dvc status dvc.yaml --json", repo, env).stdout)
    assert status == {}, f"pipeline not up to date after repro: {status}"
    # `dvc repro` runs the main study only: the extended study's stages are left for `dvc repro extended/dvc.yaml`.
    assert not (repo / "extended/metrics").exists()

    client, runs = mlflow_runs(repo)
    # The runs of the study's own `dvc repro` (other tests add runs of named experiments).
    ours = [r for r in runs if not r.data.tags.get("ddpm.dvc_experiment")]
    children = [r for r in ours if r.data.tags.get("ddpm.role") == "schedule"]
    parents = [r for r in ours if r.data.tags.get("ddpm.role") == "execution"]
    assert len(parents) == 1 and sorted(r.info.run_name for r in children) == sorted(schedules)
    for r in children:
        assert r.info.status == "FINISHED"
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert r.data.params["train.steps"] == "8" and r.data.params["schedule"] == r.info.run_name
        assert {"fid", "kid_mean", "final_loss", "alpha_bar_T", "log_snr_min", "train/loss", "train/loss_bucket_0"} <= set(r.data.metrics)
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "train/loss")]
        assert steps == [2, 4, 6, 8]
        artifacts = {a.path for a in client.list_artifacts(r.info.run_id, "samples")}
        assert {"samples/grid.png", "samples/denoising.gif", "samples/forward.png"} <= artifacts
        # The sweep's curves, with the number of sampling steps as MLflow's step axis.
        assert sorted(m.step for m in client.get_metric_history(r.info.run_id, "sweep/ddim/fid")) == [2, 4]
        assert {"fid_std", "fid_inf", "fid_inf_std", "bits_per_dim", "bits_per_dim_std"} <= set(r.data.metrics)
    assert {f"{n}/fid" for n in schedules} <= set(parents[0].data.metrics)
    assert client.get_experiment(parents[0].info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert (repo / "mlartifacts").is_dir()


def test_exp_run_single_schedule(study):
    repo, env = study
    sh("dvc exp run -n only-cosine -S schedule=cosine", repo, env)
    train = json.loads((repo / "metrics/train.json").read_text())
    assert list(train) == ["cosine"]
    exps = json.loads(sh("dvc exp show --json", repo, env).stdout)
    text = json.dumps(exps)
    assert "only-cosine" in text and '"schedule": "cosine"' in text
    client, runs = mlflow_runs(repo)
    named = [r for r in runs if r.info.run_name == "only-cosine-cosine"]
    assert len(named) == 1 and named[0].info.status == "FINISHED" and "fid" in named[0].data.metrics
    assert named[0].data.tags["ddpm.dvc_experiment"] == "only-cosine"
    # One schedule is placed in the committed study's ranking: the same settings but `schedule`, so the same samples.
    report = (repo / "reports/main/README.md").read_text()
    line = next(x for x in report.splitlines() if x.startswith("- **Against the committed baseline**"))
    committed = json.loads(sh("git show HEAD:metrics/evaluate.json", repo, env).stdout)
    assert "(the same number)" in line and f"{committed['cosine']['fid']:.1f} ± " in line, line
    assert all(f"{b} " in line for b in ("linear", "quadratic", "sigmoid")), line

    # Back to all four schedules as a new experiment: sample and evaluate for these params ran in
    # the study, so DVC restores them from its run cache without running them; the report stage
    # then fills the new runs from DVC's files.
    out = sh("dvc exp run -n back-to-all -S 'schedule=[linear,quadratic,sigmoid,cosine]'", repo, env)
    assert "Stage 'sample' is cached - skipping run" in out.stdout + out.stderr
    client, runs = mlflow_runs(repo)
    again = next(r for r in runs if r.info.run_name == "back-to-all-quadratic")
    assert again.info.status == "FINISHED" and {"fid", "final_loss", "sample_time_s"} <= set(again.data.metrics)
    assert {a.path for a in client.list_artifacts(again.info.run_id, "samples")} >= {"samples/grid.png"}
    parent = client.get_run(again.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED" and client.list_artifacts(parent.info.run_id, "report")


def test_exp_run_with_another_precision_retrains_and_samples(study):
    """`train.precision` is a `train` param (it was not, and `sample` then refused the model DVC kept)."""
    import torch

    repo, env = study
    out = sh("dvc exp run -n fp32 -S schedule=linear -S train.precision=fp32", repo, env)
    log = out.stdout + out.stderr
    assert "Running stage 'train'" in log and "Running stage 'sample'" in log and "Running stage 'report'" in log
    state = torch.load(repo / "models/linear/checkpoint.pt", weights_only=True)
    assert state["lineage"]["train"]["precision"] == "fp32"


def test_downstream_param_change_opens_a_correctly_labelled_run(study):
    repo, env = study
    sh("dvc exp run -n fewer-steps -S schedule=linear -S sample.steps=3", repo, env)
    client, runs = mlflow_runs(repo)
    run = next(r for r in runs if r.info.run_name == "fewer-steps-linear")
    assert run.data.params["sample.steps"] == "3" and "fid" in run.data.metrics
    # Training history is carried into the new run, so it is complete on its own.
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [2, 4, 6, 8]


def test_conditional_experiment_with_guidance_and_the_sde_and_ode_samplers(study):
    """The README's conditional experiment, scaled down: a class-conditional model, guided sampling, the
    guidance sweep with both new samplers, per-class FID, the per-class grids, and all of it in MLflow."""
    repo, env = study
    sh("dvc exp run -n conditional -S 'schedule=[linear,cosine]' -S model.num_classes=10 -S sample.guidance=1 "
       "-S sample.sampler=sde -S 'sweep.samplers=[sde,ode]' -S 'sweep.nfe=[2]' -S 'sweep.guidance=[-1,3]'",
       repo, env)
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    per_class = evaluate["per_class"]
    assert sorted(per_class["fid"]) == ["cosine", "linear"] and sum(per_class["counts"]) == 24
    scored = [c for c, f in enumerate(per_class["floor"]) if f is not None]
    assert scored and all(per_class["fid"][n][c] > 0 for n in ("linear", "cosine") for c in scored)
    sweep = json.loads((repo / "metrics/sweep.json").read_text())
    assert sorted(sweep["cells"]) == ["ode_w-1_2", "ode_w3_2", "sde_w-1_2", "sde_w3_2"]
    assert (repo / "plots/sweep/linear_ode_w3.tsv").is_file()
    report = (repo / "reports/main/README.md").read_text()
    for part in ("## Conditional generation", "fid_vs_guidance.png", "classes_linear.png", "mean per-class FID",
                 "- w = -1 (unconditional): ", "- w = 3: ", "Ankle boot", "Heun", "Euler–Maruyama",
                 "guidance w = 1", "**Precision / recall against guidance** (SDE, 2 NFE, percentage points from w = -1 "
                 "to w = 3)"):
        assert part in report, part
    for picture in ("classes_linear.png", "classes_cosine.png", "fid_vs_guidance.png"):
        assert (repo / "reports/main" / picture).is_file(), picture
    # A 10-row grid: one row per class.
    from PIL import Image
    grid = Image.open(repo / "samples/linear/classes.png")
    assert grid.height > 9 * 28 and grid.width < grid.height

    client, runs = mlflow_runs(repo)
    run = next(r for r in runs if r.info.run_name == "conditional-linear")
    assert run.info.status == "FINISHED"
    assert run.data.params["model.num_classes"] == "10" and run.data.params["sample.guidance"] == "1.0"
    assert run.data.params["model.class_embedding"] == "multiply" and run.data.params["train.cond_drop_prob"] == "0.1"
    assert {"fid", "fid_per_class_mean", "fid_per_class_floor"} <= set(run.data.metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "sweep/ode_w3/fid")] == [2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "sweep/sde_w-1/fid")] == [2]
    assert "samples/classes.png" in {a.path for a in client.list_artifacts(run.info.run_id, "samples")}


def test_bad_param_fails_fast_and_keeps_outputs(study):
    repo, env = study
    before = (repo / "metrics/train.json").read_text()
    out = sh("dvc exp run -S schedule=exponential", repo, env, check=False)
    assert out.returncode != 0
    assert "schedule: invalid value 'exponential'; expected one or a list of: linear, quadratic, sigmoid, cosine" in out.stdout + out.stderr
    assert (repo / "metrics/train.json").read_text() == before


def test_extended_study_runs_the_grid_seeds_and_longer_run(study):
    """`dvc repro extended/dvc.yaml` on the quick configuration: two training seeds, the trained x sampled
    grid, a longer run whose snapshot at train.steps is the main model; every number tied to the main study."""
    import torch

    from ddpm_study.replication import VERDICTS

    repo, env = study
    sh("dvc repro extended/dvc.yaml", repo, env)
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    sweep = json.loads((repo / "metrics/sweep.json").read_text())

    def load(path):
        return torch.load(repo / path, weights_only=True)

    seeds = json.loads((repo / "extended/metrics/seeds.json").read_text())
    assert seeds["seeds"] == [0, 1] and seeds["schedules"] == ["linear", "cosine"]
    for name in ("linear", "cosine"):  # seed 0 is the main study: the same scores as `evaluate`
        assert seeds["fid"][name][0] == pytest.approx(evaluate[name]["fid"], rel=1e-12)
        assert seeds["fid_std"][name][0] == pytest.approx(evaluate[name]["fid_std"], rel=1e-12)
        other = load(f"extended/seed_models/{name}/seed_1.pt")
        assert other["step"] == 8 and other["lineage"]["seed"] == 1
        main = load(f"models/{name}/checkpoint.pt")
        assert not all(torch.equal(main["ema"][k], other["ema"][k]) for k in main["ema"])
    pair = seeds["pairs"]["linear-cosine"]
    assert pair["diffs"][0] == pytest.approx(evaluate["pairs"]["linear-cosine"]["diff"], rel=1e-12)
    assert len(pair["diffs"]) == 2 and pair["verdict"] in VERDICTS

    # The longer run continues the main model exactly, so its snapshot at train.steps scores like the sweep.
    snapshot, main = load("extended/longer_models/step_8.pt"), load("models/linear/checkpoint.pt")
    assert all(torch.equal(snapshot["ema"][k], main["ema"][k]) for k in main["ema"])
    under = json.loads((repo / "extended/metrics/undertraining.json").read_text())
    assert under["snapshots"] == [4, 8, 16] and sorted(under["minus_ddpm"]["ddim"]) == ["2", "4"]
    assert sorted(under["ddpm_gain"]["4"]) == ["4", "8"]  # every snapshot but the last, against the next
    for cell in ("ddpm_2", "ddpm_4", "ddim_2", "ddim_4"):
        assert under["cells"]["8"][cell]["fid"] == pytest.approx(sweep["cells"][cell]["linear"]["fid"], rel=1e-9)
    assert under["cells"]["16"]["final_loss"] > 0 and set(under["overtakes"]["ddim"]) == {"2", "4"}

    # The grid's diagonal is each model's own process: the sweep's FID at the same setting.
    cross = json.loads((repo / "extended/metrics/cross.json").read_text())
    assert sorted(cross["settings"]) == ["ddim_2", "ddpm_2"] and cross["baseline"] == "linear"
    for key, s in cross["settings"].items():
        for name in ("linear", "quadratic", "sigmoid", "cosine"):
            assert s["fid"][name][name] == pytest.approx(sweep["cells"][key][name]["fid"], rel=1e-9)
            assert s["minus_own"][name][name]["diff"] == 0
        split = s["split"]["cosine"]
        assert split["total"]["value"] == pytest.approx(s["fid"]["linear"]["linear"] - s["fid"]["cosine"]["cosine"])
        assert split["training"]["value"] + split["sampling"]["value"] == pytest.approx(split["total"]["value"])

    report = (repo / "reports/extended/README.md").read_text()
    for part in ("## 1. DDIM against DDPM", "## 2. Training schedule vs sampling schedule", "## 3. Training seeds",
                 "## Against the literature", "undertraining.png", "cross.png", "| linear-cosine"):
        assert part in report, part
    assert (repo / "reports/extended/cross.png").is_file() and (repo / "reports/extended/undertraining.png").is_file()
    status = json.loads(sh("dvc status extended/dvc.yaml --json", repo, env).stdout)
    assert status == {}, f"extended study not up to date after repro: {status}"

    client, runs = mlflow_runs(repo)
    parent = next(r for r in runs if "extended/undertraining/ddim_4/fid" in r.data.metrics)
    assert parent.data.tags["ddpm.role"] == "execution" and parent.info.status == "FINISHED"
    history = client.get_metric_history(parent.info.run_id, "extended/undertraining/ddim_4/fid")
    assert sorted(m.step for m in history) == [4, 8, 16]
    assert "extended_report/README.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "extended_report")}


def test_teammate_pulls_from_the_dvc_remote_without_retraining_and_backfills_mlflow(study, tmp_path):
    """README "Sharing results": `dvc remote add -d` + `dvc push`; a fresh clone's `dvc pull` makes
    `dvc status` and `dvc repro` report everything up to date (nothing runs, nothing retrains), and
    `ddpm-study backfill` records the pulled study in the teammate's own (empty) MLflow store."""
    repo, env = study
    remote = tmp_path / "remote"
    sh(f"dvc remote add -d shared {remote} && git commit -qam 'DVC remote'", repo, env)
    sh("dvc push dvc.yaml", repo, env)
    mate = tmp_path / "teammate"
    sh(f"git clone -q {repo} {mate}", tmp_path, env)
    mate_env = {**env, "PYTHONPATH": f"{mate / 'src'}:{mate}"}
    sh("dvc pull dvc.yaml", mate, mate_env)
    assert json.loads(sh("dvc status dvc.yaml --json", mate, mate_env).stdout) == {}
    out = sh("dvc repro", mate, mate_env)
    assert "Running stage" not in out.stdout + out.stderr, out.stdout
    assert (mate / "models/cosine/checkpoint.pt").read_bytes() == (repo / "models/cosine/checkpoint.pt").read_bytes()
    # MLflow's store is not in the remote: the teammate starts with none, and backfill fills it from DVC's files.
    assert not (mate / "mlflow.db").exists()
    sh("ddpm-study backfill", mate, mate_env)
    client, runs = mlflow_runs(mate)
    mine = {r.info.run_name: r for r in runs if r.data.tags.get("ddpm.role") == "schedule"}
    theirs = {r.info.run_name: r for r in mlflow_runs(repo)[1] if r.data.tags.get("ddpm.role") == "schedule"
              and not r.data.tags.get("ddpm.dvc_experiment")}
    assert sorted(mine) == sorted(theirs) == ["cosine", "linear", "quadratic", "sigmoid"]
    for name, run in mine.items():
        assert run.info.status == "FINISHED"
        assert run.data.metrics["fid"] == theirs[name].data.metrics["fid"]
        assert run.data.params == theirs[name].data.params
        assert "samples/grid.png" in {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [2, 4, 6, 8]
    # Each schedule's EMA model as an MLflow logged model of its run, from the pulled checkpoint.
    experiment = runs[0].info.experiment_id
    models = client.search_logged_models(experiment_ids=[experiment])
    assert sorted(m.source_run_id for m in models) == sorted(r.info.run_id for r in mine.values())
    assert all(m.status.name == "READY" and m.params["schedule"] == m.name for m in models)
    # A second backfill adds nothing.
    sh("ddpm-study backfill", mate, mate_env)
    again = mlflow_runs(mate)[1]
    assert len(again) == len(runs) and len(client.search_logged_models(experiment_ids=[experiment])) == len(models)
    assert [m.step for m in client.get_metric_history(mine["linear"].info.run_id, "train/loss")] == [2, 4, 6, 8]


def readme_ui_links() -> list[str]:
    """The MLflow UI links of the README's "What users do with it" (default port, experiment 1)."""
    return re.findall(r"<(http://127\.0\.0\.1:5000/#/experiments/1/[^>]+)>", (ROOT / "README.md").read_text())


def test_mlflow_ui_in_a_browser_shows_the_runs_their_fid_and_sample_grids(study, tmp_path):
    """The README's `mlflow ui` command and links, opened in a real headless Chromium: the links land on
    the runs (not MLflow 3's GenAI overview), the study chart holds every schedule's FID, each
    schedule's run page shows its FID, and its artifacts page shows the sample grid."""
    from browser import dom_until, screenshot
    from test_faults import documented_ui

    repo, env = study
    with documented_ui(repo, env) as port:
        client, runs = mlflow_runs(repo)
        assert runs[0].info.experiment_id == "1"  # what the README's links name
        links = readme_ui_links()
        assert len(links) >= 2, links
        local = lambda url: url.replace(":5000/", f":{port}/")  # noqa: E731
        strip = lambda dom: re.sub(r"<[^>]+>", " ", dom)  # noqa: E731
        schedules = ["linear", "quadratic", "sigmoid", "cosine"]
        parent = next(r for r in runs if r.data.tags.get("ddpm.role") == "execution"
                      and not r.data.tags.get("ddpm.dvc_experiment"))
        for link in links:
            page = strip(dom_until(local(link), lambda dom: parent.info.run_name in dom))
            assert "Runs" in page and "No data available" not in page, link
            assert parent.info.run_name in page, (link, page[:3000])
        chart = next(link for link in links if "compareRunsMode=CHART" in link)
        page = strip(dom_until(local(chart), lambda dom: any(f"{n}/fid" in dom for n in schedules)))
        assert any(f"{n}/fid" in page for n in schedules), page[:3000]
        for run in runs:
            if run.data.tags.get("ddpm.role") != "schedule" or run.data.tags.get("ddpm.dvc_experiment"):
                continue
            base = f"http://127.0.0.1:{port}/#/experiments/1/runs/{run.info.run_id}"
            shown = f"{run.data.metrics['fid']:.2f}"[:4]  # the leading digits, however the UI rounds
            page = strip(dom_until(base, lambda dom: shown in dom))
            assert run.info.run_name in page and "fid" in page and shown in page, (shown, page[:3000])
            # The artifact viewer fetches the file and shows it as an <img> of a blob URL.
            image = re.compile(r'<img[^>]+alt="samples/grid\.png"[^>]+src="blob:')
            dom = dom_until(f"{base}/artifacts/samples/grid.png", image.search)
            assert image.search(dom), dom[-3000:]
        png = screenshot(links[0].replace(":5000/", f":{port}/"), tmp_path / "ui.png", budget_ms=20000)
        assert png.stat().st_size > 20_000  # a rendered page, not a blank one
