"""Training loop: resume is bit-exact, divergence stops cleanly, checkpoints load safely."""

import os
import pickle

import pytest
import torch

from conftest import tiny_params
from ddpm_study import runtime, training
from ddpm_study.config import StudyConfig
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.schedules import get_betas
from pipeline import checkpoints, lineage


class Kill(Exception):
    """Stands in for a kill between two steps (the real `kill -9` is in the end-to-end tests)."""


def setup(tmp_path, dropout=0.0, **train_overrides):
    p = tiny_params()
    p["train"].update(train_overrides)
    p["model"]["dropout"] = dropout
    cfg = StudyConfig.from_dict(p)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    diffusion = GaussianDiffusion(get_betas("cosine", 1000, s=0.008, max_beta=0.999))
    kwargs = dict(schedule="cosine", diffusion=diffusion, images=images, model_cfg=cfg.model, train_cfg=cfg.train,
                  seed=cfg.seed, lineage=lineage.training(cfg, "cosine"), device=torch.device("cpu"))
    return cfg, kwargs


def kill_at(step):
    def on_step(s):
        if s == step:
            raise Kill
    return on_step


def kill_and_resume(tmp_path, kw, kill_step):
    ckpt = tmp_path / f"killed_{kill_step}.pt"
    with pytest.raises(Kill):
        training.train(**kw, checkpoint_path=ckpt, on_step=kill_at(kill_step))
    return training.train(**kw, checkpoint_path=ckpt)


def same_weights(a, b) -> bool:
    return all(torch.equal(a[key][name], b[key][name]) for key in ("model", "ema") for name in a[key])


@pytest.mark.parametrize("kill_step", [5, 7])
def test_resume_after_kill_is_bit_exact(tmp_path, kill_step):
    """Killed after the step-4 checkpoint (1 and 3 steps past it), resumed from it: with dropout on,
    so the restored global torch RNG state decides the dropout masks of the replayed steps."""
    _, kw = setup(tmp_path, dropout=0.1)
    full = training.train(**kw, checkpoint_path=tmp_path / "full.pt")
    resumed = kill_and_resume(tmp_path, kw, kill_step)
    assert resumed.resumed_from == 4  # the last checkpoint before the kill: something was resumed
    assert resumed.state["step"] == full.state["step"] == 8
    assert same_weights(full.state, resumed.state)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]


def test_resume_without_the_saved_rng_state_would_differ(tmp_path, monkeypatch):
    """The check above can fail: dropping the restore of the global RNG state changes the weights."""
    _, kw = setup(tmp_path, dropout=0.1)
    full = training.train(**kw, checkpoint_path=tmp_path / "full.pt")
    monkeypatch.setattr(training, "set_rng_states", lambda states: None)
    resumed = kill_and_resume(tmp_path, kw, 5)
    assert resumed.resumed_from == 4 and not same_weights(full.state, resumed.state)


def test_ema_update_is_the_exponential_moving_average():
    """Two updates with decay d: ema_2 = d^2 ema_0 + d (1 - d) w_1 + (1 - d) w_2."""
    ema, model = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        ema.weight.fill_(1.0), ema.bias.fill_(-1.0), model.weight.fill_(3.0), model.bias.fill_(5.0)
    training.ema_update(ema, model, 0.9)
    with torch.no_grad():
        model.weight.fill_(-2.0), model.bias.fill_(0.0)
    training.ema_update(ema, model, 0.9)
    assert ema.weight.flatten().tolist() == pytest.approx([0.81 * 1 + 0.09 * 3 + 0.1 * -2] * 2)
    assert ema.bias.item() == pytest.approx(0.81 * -1 + 0.09 * 5 + 0.1 * 0)
    assert model.weight.tolist() == [[-2.0, -2.0]]  # the model itself is untouched


def test_final_loss_is_the_mean_of_the_last_tenth_of_rows():
    rows = [{"step": i, "loss": float(i)} for i in range(1, 26)]
    assert training.final_rows(rows) == rows[-2:] and training.final_loss(rows) == 24.5
    assert training.final_loss(rows[:5]) == 5.0  # fewer than ten rows: the last one


def test_loss_buckets_are_the_mean_loss_of_their_timesteps(tmp_path):
    """Row 1 logs step 1 alone: the U-Net's output layers start at zero, so each image's loss is
    mean(eps^2); its t and eps are the first draws of the noise generator seeded with the run's seed."""
    cfg, kw = setup(tmp_path, steps=1, log_every=1, loss_buckets=4)
    row = training.train(**kw, checkpoint_path=tmp_path / "c.pt").history[0]
    images = kw["images"][training.batch_indices(len(kw["images"]), cfg.train.batch_size, 0, cfg.seed)]
    gen = torch.Generator().manual_seed(cfg.seed)
    t = torch.randint(0, 1000, (cfg.train.batch_size,), generator=gen)
    eps = torch.randn(images.shape, generator=gen)
    per_image = eps.pow(2).mean(dim=(1, 2, 3))
    assert row["loss"] == pytest.approx(per_image.mean().item(), rel=1e-6)
    for i in range(4):
        inside = (t >= 250 * i) & (t < 250 * (i + 1))
        expected = per_image[inside].mean().item() if inside.any() else None
        assert row[f"loss_bucket_{i}"] == (pytest.approx(expected, rel=1e-6) if expected is not None else None), i


def test_finished_checkpoint_is_reused_and_other_config_retrains(tmp_path):
    cfg, kw = setup(tmp_path)
    ckpt = tmp_path / "c.pt"
    first = training.train(**kw, checkpoint_path=ckpt)
    again = training.train(**kw, checkpoint_path=ckpt, on_step=kill_at(1))  # would raise if it trained
    assert again.resumed_from == 8 and torch.equal(again.state["ema"]["stem.weight"], first.state["ema"]["stem.weight"])
    _, kw2 = setup(tmp_path, lr=5e-4)
    retrained = training.train(**kw2, checkpoint_path=ckpt)
    assert retrained.resumed_from == 0


def test_divergence_stops_with_step_and_schedule_and_keeps_checkpoint(tmp_path):
    _, kw = setup(tmp_path, lr=1e4, warmup_steps=0, steps=40, checkpoint_every=2)
    ckpt = tmp_path / "c.pt"
    with pytest.raises(training.TrainingDiverged, match=r"schedule 'cosine', step \d+: (loss|gradient norm) is (nan|inf)") as err:
        training.train(**kw, checkpoint_path=ckpt)
    assert err.value.step > 1
    state = training.load_checkpoint(ckpt)
    assert state["step"] < err.value.step
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_checkpoint_describes_itself(tmp_path):
    cfg, kw = setup(tmp_path)
    result = training.train(**kw, checkpoint_path=tmp_path / "c.pt")
    state = training.load_checkpoint(tmp_path / "c.pt")
    assert state["schedule"] == "cosine" and state["step"] == 8
    assert state["lineage"] == lineage.training(cfg, "cosine")
    assert {"model", "ema", "optimizer", "rng", "history", "train_time_s"} <= set(state)
    model = training.load_ema_model(state, torch.device("cpu"))
    assert torch.equal(model.stem.weight, result.state["ema"]["stem.weight"])


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "model": Payload()}, bad)  # torch.save pickles the payload
    with pytest.raises(training.CheckpointError, match="checkpoint.pt: not a loadable checkpoint"):
        training.load_checkpoint(bad)
    assert not (tmp_path / "PWNED").exists()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(training.CheckpointError):
        training.load_checkpoint(raw)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    _, kw = setup(tmp_path)
    ckpt = tmp_path / "c.pt"
    training.train(**kw, checkpoint_path=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(training.CheckpointError, match="c.pt: not a loadable checkpoint"):
        training.train(**kw, checkpoint_path=ckpt)


def test_batches_cover_each_epoch_once():
    seen = torch.cat([training.batch_indices(10, 3, step, seed=0) for step in range(3)])
    assert len(set(seen.tolist())) == 9
    assert not torch.equal(training.batch_indices(10, 3, 0, 0), training.batch_indices(10, 3, 3, 0))


def test_learning_rate_warmup():
    cfg = StudyConfig.from_dict(tiny_params()).train
    assert training.learning_rate(0, cfg) == pytest.approx(cfg.lr / 2)
    assert training.learning_rate(5, cfg) == pytest.approx(cfg.lr)


def test_class_conditional_training_resumes_bit_exact_and_drops_labels(tmp_path, monkeypatch):
    """Labels come with the images; the label drop (classifier-free guidance) is part of the saved random
    state, so a killed conditional run resumes bit-exactly too; a missing label array is refused."""
    p = tiny_params()
    p["model"]["num_classes"] = 10
    p["train"]["cond_drop_prob"] = 0.5
    cfg = StudyConfig.from_dict(p)
    _, kw = setup(tmp_path)
    kw.update(model_cfg=cfg.model, train_cfg=cfg.train, lineage=lineage.training(cfg, "cosine"),
              labels=torch.arange(64) % 10)
    seen = []
    real_forward = training.UNet.forward
    monkeypatch.setattr(training.UNet, "forward", lambda self, x, t, y=None: seen.append(y) or real_forward(self, x, t, y))
    full = training.train(**kw, checkpoint_path=tmp_path / "full.pt")
    labels = torch.cat([y for y in seen if y is not None])
    assert len(labels) == 8 * 16 and 0.3 < (labels == 10).float().mean() < 0.7  # about half dropped to the null class
    assert set(labels[labels != 10].tolist()) <= set(range(10))
    resumed = kill_and_resume(tmp_path, kw, 6)
    assert resumed.resumed_from == 4 and same_weights(full.state, resumed.state)
    assert "class_gains.0.weight" in full.state["ema"]
    with pytest.raises(ValueError, match="one label per training image"):
        training.train(**{**kw, "labels": None}, checkpoint_path=tmp_path / "none.pt")


def test_bf16_trains_under_autocast_where_native_and_falls_back_to_fp32_elsewhere(tmp_path):
    """train.precision bf16: on a CPU with native bf16 (AVX512-BF16/AMX) the weights differ from fp32's
    but training stays close to it; on one without, bf16 resolves to fp32 and gives fp32's weights
    exactly. The lineage records what ran, so the two never stand in for each other."""
    native = runtime.bf16_supported(torch.device("cpu"))
    cfg32, kw32 = setup(tmp_path, precision="fp32")
    cfg16, kw16 = setup(tmp_path, precision="bf16")
    fp32 = training.train(**kw32, checkpoint_path=tmp_path / "fp32.pt")
    bf16 = training.train(**kw16, checkpoint_path=tmp_path / "bf16.pt")
    assert lineage.training(cfg16, "cosine")["train"]["precision"] == ("bf16" if native else "fp32")
    assert lineage.training(cfg32, "cosine")["train"]["precision"] == "fp32"
    assert same_weights(fp32.state, bf16.state) == (not native)
    first, last = fp32.history[-1]["loss"], bf16.history[-1]["loss"]
    assert abs(first - last) <= 0.05 * first, (first, last)
    if native:  # a bf16 checkpoint is not taken for the fp32 run's
        again = training.train(**kw32, checkpoint_path=tmp_path / "bf16.pt")
        assert again.resumed_from == 0 and same_weights(again.state, fp32.state)


def test_precision_resolves_per_device():
    cpu = torch.device("cpu")
    assert runtime.resolve_precision("fp32", cpu) == "fp32"
    assert runtime.resolve_precision("bf16", cpu) == ("bf16" if runtime.bf16_supported(cpu) else "fp32")
    with runtime.autocast("fp32", cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with runtime.autocast("bf16", cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_a_finished_model_serves_later_stages_whichever_precision_bf16_resolved_to(tmp_path):
    """A model trained with train.precision bf16 ran in fp32 on a machine without native bf16 (here: the
    same run asked for fp32); sampling with a bf16 configuration on any machine accepts it. A
    configuration that asks for fp32 refuses a model trained in bf16."""
    cfg32, kw32 = setup(tmp_path, precision="fp32")
    cfg16, kw16 = setup(tmp_path, precision="bf16")
    training.train(**kw32, checkpoint_path=tmp_path / "fp32.pt")
    cpu = torch.device("cpu")
    assert checkpoints.load_finished(tmp_path / "fp32.pt", cfg16, lineage.training(cfg16, "cosine"), 8, cpu) is not None
    if runtime.bf16_supported(cpu):
        training.train(**kw16, checkpoint_path=tmp_path / "bf16.pt")
        with pytest.raises(training.CheckpointError, match="other parameters or code"):
            checkpoints.load_finished(tmp_path / "bf16.pt", cfg32, lineage.training(cfg32, "cosine"), 8, cpu)
