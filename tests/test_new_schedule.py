"""Adding a schedule is one registered function plus one params.yaml entry: nothing else changes."""

import json

import pytest

from conftest import make_repo, mlflow_runs, sh, tiny_params

pytestmark = pytest.mark.slow

GEOMETRIC = '''

@register("geometric", beta_start=_BETA_START, beta_end=_BETA_END)
def geometric_betas(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    """betas evenly spaced in log from beta_start to beta_end."""
    start, end = _rescale(beta_start, beta_end, T)
    return np.geomspace(start, end, T, dtype=np.float64)
'''


def test_a_fifth_schedule_runs_through_the_whole_pipeline(tmp_path, torch_home, fashion_mnist_dir):
    params = tiny_params()
    params["schedule"] = ["linear", "geometric"]
    params["schedules"]["geometric"] = {"beta_start": 1e-4, "beta_end": 0.02}
    repo, env = make_repo(tmp_path / "five", params, torch_home)
    schedules_py = repo / "src/ddpm_study/schedules.py"
    text = schedules_py.read_text()
    anchor = "\n\ndef get_betas("
    schedules_py.write_text(text.replace(anchor, GEOMETRIC + anchor, 1))
    dvc_yaml = (repo / "dvc.yaml").read_text()
    sh("git add -A && git commit -qm 'register geometric'", repo, env)

    sh("dvc repro", repo, env)
    assert (repo / "dvc.yaml").read_text() == dvc_yaml
    train = json.loads((repo / "metrics/train.json").read_text())
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    assert sorted(train) == ["geometric", "linear"] and train["geometric"]["steps"] == 8
    assert evaluate["geometric"]["fid"] > 0 and "linear-geometric" in evaluate["pairs"]
    report = (repo / "reports/main/README.md").read_text()
    assert "| geometric" in report and (repo / "reports/main/samples_geometric.png").is_file()
    # The SNR table covers every registered schedule, the new one included.
    assert sum(line.startswith("| geometric") for line in report.splitlines()) >= 2
    _, runs = mlflow_runs(repo)
    run = next(r for r in runs if r.info.run_name == "geometric")
    assert run.info.status == "FINISHED" and {"fid", "final_loss", "alpha_bar_T"} <= set(run.data.metrics)
    assert run.data.params["schedules.geometric.beta_end"] == "0.02"

    # Its parameters are validated like the others', against the spec it was registered with.
    out = sh("dvc exp run -S schedules.geometric.beta_end=0.0001", repo, env, check=False)  # = beta_start
    assert out.returncode != 0
    assert ("schedules.geometric.beta_end: invalid value 0.0001; expected a number in (0, 1) greater than "
            "beta_start (0.0001)") in out.stdout + out.stderr
