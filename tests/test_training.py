"""Training loop: resume is bit-exact, divergence stops cleanly, checkpoints load safely."""

import os
import pickle
import sys

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


# --- the GPU path, checked on the CPU (issue 27) -------------------------------------------------------
class HostTraffic(torch.overrides.TorchFunctionMode):
    """Counts, per training step, what on a GPU is a host-device synchronisation or copy in the project's
    own code: reading a tensor's value on the host (``item``, ``bool``, ``int``, ``float``, ``tolist``) and
    every ``Tensor.to``/``cuda``/``cpu`` call (on the CPU these cost nothing, so count the calls: each is a
    copy on a GPU). Calls made by PyTorch itself (the optimizer reads its CPU step counters, say) are not
    counted: tests/test_gpu.py checks the whole step under ``torch.cuda.set_sync_debug_mode("error")``."""

    READS = {torch.Tensor.item, torch.Tensor.__bool__, torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.tolist}
    MOVES = {torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu}

    def __init__(self):
        super().__init__()
        self.per_step, self.current = [], {"reads": 0, "moves": 0}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if not _called_from_the_library():
            return func(*args, **(kwargs or {}))
        if func in self.READS:
            self.current["reads"] += 1
        elif func in self.MOVES and not (func is torch.Tensor.to and _dtype_only(args, kwargs or {})):
            self.current["moves"] += 1
        return func(*args, **(kwargs or {}))

    def step_done(self, step):
        self.per_step.append((step, self.current))
        self.current = {"reads": 0, "moves": 0}


def _called_from_the_library() -> bool:
    """Whether the Python frame that made this torch call is in ``src/ddpm_study`` (not in torch's own code)."""
    frame = sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename == __file__ or frame.f_code.co_filename.endswith(
            f"torch{os.sep}overrides.py")):
        frame = frame.f_back
    return frame is not None and f"{os.sep}ddpm_study{os.sep}" in frame.f_code.co_filename


def _dtype_only(args, kwargs) -> bool:
    """``x.to(torch.float32)``: a cast on the tensor's own device, no transfer."""
    rest = list(args[1:]) + list(kwargs.values())
    return bool(rest) and all(isinstance(a, (torch.dtype, bool)) for a in rest)


def test_a_training_step_reads_nothing_back_and_copies_nothing_to_the_device(tmp_path):
    """Between log steps a step must not wait for the device (no value read on the host) nor copy anything
    host-to-device (the images, the epoch's order and the coefficient tables are on the device already).
    Today's code before issue 27 did both: two finiteness checks read back per step, three table copies."""
    _, kw = setup(tmp_path, steps=12, log_every=6, checkpoint_every=6)
    traffic = HostTraffic()
    with traffic:
        training.train(**kw, checkpoint_path=tmp_path / "c.pt", on_step=traffic.step_done)
    # The count for step s covers the work after step s - 1's callback: step s itself, plus step s - 1's
    # logging when s - 1 was a log step.
    quiet = [(s, c) for s, c in traffic.per_step if s not in (1, 7)]  # after log step 6: its row, its checkpoint
    assert len(quiet) == 10
    per_epoch = 64 // 16  # the first step of an epoch copies that epoch's order to the device: once per epoch
    expected = {s: {"reads": 0, "moves": int((s - 1) % per_epoch == 0)} for s, _ in quiet}
    assert {s: c for s, c in quiet} == expected


def test_sampling_steps_read_nothing_back_and_copy_nothing(tmp_path):
    """Every sampler's step runs without a host read or a copy (the ODE used to read ``t.min()`` per step)."""
    from ddpm_study.samplers import SAMPLERS, sample_loop

    spaced = GaussianDiffusion(get_betas("cosine", 1000, s=0.008, max_beta=0.999)).respace(6)
    model = lambda x, t: 0.1 * x + 1e-4 * t.float().reshape(-1, 1, 1, 1)  # noqa: E731
    for sampler in SAMPLERS:
        traffic = HostTraffic()
        x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        spaced._on(x_T.device)  # the one copy of the tables, made before the loop
        with traffic:
            sample_loop(spaced, model, x_T, torch.Generator().manual_seed(1), sampler=sampler,
                        on_step=traffic.step_done)
        # A sampler may copy its own tables to the device once per pass, in its first step (``ode_clip``'s
        # eps view of the process); every later step copies and reads back nothing.
        first, *later = [c for _, c in traffic.per_step]
        assert first["reads"] == 0 and all(c == {"reads": 0, "moves": 0} for c in later), (sampler, traffic.per_step)


def test_the_fused_ema_is_the_per_parameter_lerp_bit_for_bit():
    a = training.build_model(StudyConfig.from_dict(tiny_params()).model, 1)
    b = training.build_model(StudyConfig.from_dict(tiny_params()).model, 1)
    ema = {n: p.detach().clone() for n, p in a.named_parameters()}
    training.ema_update(a, b, 0.995)
    for n, p in b.named_parameters():
        assert torch.equal(dict(a.named_parameters())[n], ema[n].lerp(p.detach(), 1 - 0.995))


def test_device_batches_are_batch_indices():
    batches = training.DeviceBatches(50, 16, seed=3, device=torch.device("cpu"))
    for step in range(10):  # three per epoch: four epochs' orders
        assert torch.equal(batches(step), training.batch_indices(50, 16, step, 3))


def _other_device_checkpoint(tmp_path, kw, cfg, step_of: int):
    """A checkpoint of this lineage as a GPU run writes it: its lineage says cuda, its noise generator
    state is a CUDA generator's (16 bytes: seed and offset, where a CPU generator's is 5,056)."""
    path = tmp_path / "c.pt"
    training.train(**{**kw, "train_cfg": type(cfg.train)(**{**cfg.train.__dict__, "steps": step_of})},
                   checkpoint_path=path)
    state = training.load_checkpoint(path)
    gpu_lineage = {**state["lineage"], "device": "cuda", "reproducible": True}
    state["lineage"], state["lineage_fingerprint"] = gpu_lineage, lineage.fingerprint(gpu_lineage)
    state["rng"]["noise"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(state, path)
    return path


def test_an_unfinished_gpu_checkpoint_is_refused_on_the_cpu_and_kept(tmp_path):
    cfg, kw = setup(tmp_path)
    run = kw["lineage"]
    assert run["device"] == "cpu"
    path = _other_device_checkpoint(tmp_path, {**kw, "lineage": {**run, "train": {**run["train"], "steps": 8}}}, cfg, 4)
    before = path.read_bytes()
    with pytest.raises(training.CheckpointError, match=r"step 4 of 8\) trained on cuda cannot resume on cpu"):
        training.train(**kw, checkpoint_path=path, other_devices=lineage.other_devices(run, cfg.train.precision))
    assert path.read_bytes() == before  # nothing lost


def test_a_finished_gpu_checkpoint_serves_on_the_cpu_without_restoring_its_generators(tmp_path):
    """The state of the wrong size used to be restored before the finished check: a raw RuntimeError."""
    cfg, kw = setup(tmp_path)
    run = kw["lineage"]
    path = _other_device_checkpoint(tmp_path, kw, cfg, 8)
    got = training.train(**kw, checkpoint_path=path, other_devices=lineage.other_devices(run, cfg.train.precision),
                         on_step=kill_at(1))  # would raise if it trained
    assert got.resumed_from == 8 and got.state["lineage"]["device"] == "cuda"
    # and a later stage on this CPU accepts it as finished
    assert got.state["lineage_fingerprint"] in lineage.finished_fingerprints(run, cfg.train.precision)


def test_a_cpu_checkpoint_on_a_gpu_box_is_refused_the_same_way(tmp_path, monkeypatch):
    """The other direction, without a GPU: the lineage as a CUDA machine resolves it (device cuda), the
    checkpoint a CPU run wrote."""
    cfg, kw = setup(tmp_path, steps=8)
    path = tmp_path / "c.pt"
    training.train(**{**kw, "train_cfg": type(cfg.train)(**{**cfg.train.__dict__, "steps": 4}),
                      "lineage": {**kw["lineage"], "train": {**kw["lineage"]["train"], "steps": 8}}}, checkpoint_path=path)
    gpu_run = {**kw["lineage"], "device": "cuda", "reproducible": True}
    with pytest.raises(training.CheckpointError, match=r"step 4 of 8\) trained on cpu cannot resume on cuda"):
        training.train(**{**kw, "lineage": gpu_run}, checkpoint_path=path,
                       other_devices=lineage.other_devices(gpu_run, cfg.train.precision))


def test_rank_states_are_saved_per_rank_and_rank_zeros_is_the_global_one(tmp_path):
    _, kw = setup(tmp_path)
    training.train(**kw, checkpoint_path=tmp_path / "c.pt")
    rng = training.load_checkpoint(tmp_path / "c.pt")["rng"]
    assert len(rng["ranks"]) == 1 and torch.equal(rng["ranks"][0]["torch"], rng["global"]["torch"])
