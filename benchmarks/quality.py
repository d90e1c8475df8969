"""Quality for the same minutes: this project's recipe against diffusers' and denoising-diffusion-pytorch's (issue 10).

Each contender trains on Fashion-MNIST (the Debian files, all 60,000 training images, batch 64, the
same seeded epoch order) for the same wall time with its own recipe, samples N images with its own
sampler at the same number of network calls, and is scored by this project's evaluation: Inception
features (``metrics.inception_features``) and FID (``uncertainty.frechet_distance``) against a fixed
real split of N training images (``data.real_splits``, as the `reference` stage draws it), each FID
with its delete-a-group jackknife std, every peer's difference from ``ours`` with the std of the
difference, and the real-vs-real floor at the same N.

Equal wall time: each contender gets the same training budget (``--minutes``, default 6: what the
default study spends per schedule). The budget becomes a step count from the contender's own time
per step and set-up time, measured on two throwaway runs of c and 2c steps; the step count is then
trained from scratch, so recipes whose learning rate follows the run's length (diffusers' cosine)
see their real length. This machine's speed drifts by 10 % and more over minutes, so a run that
misses the budget by more than ``--tolerance`` is redone with a corrected step count (``train_for``).
Every run's wall time (model set-up to the last step, checkpoints included) is in the results.

The contenders (every training step under bf16 autocast where the CPU or GPU has native bf16, else
fp32: ``train.precision: bf16`` as this project ships, the mixed precision both peers' trainers offer;
sampling in fp32 for all):
- ``ours``: ``training.train`` itself with ``params.yaml``'s model and ``train`` section (AdamW 1e-3,
  100 warm-up steps, EMA 0.995, grad clip 1), the linear schedule (Ho et al.; diffusers' default too),
  sampled with the project's DDPM ancestral sampler on ``calls`` respaced steps;
- ``ours-peer``: the same recipe with the U-Net at the peers' size (base 32, 2 res blocks: the
  architecture of the diffusers contender), to tell the recipe from the model size;
- ``diffusers``: ``UNet2DModel`` (32, 64, 128), 2 blocks per level, mid attention, as diffusers'
  ``examples/unconditional_image_generation/train_unconditional.py`` trains it by default (AdamW 1e-4,
  betas 0.95/0.999, weight decay 1e-6, cosine schedule with 500 warm-up steps over the run, grad clip
  1, ``EMAModel`` with warm-up (inv_gamma 1, power 3/4, max 0.9999), linear betas, eps-MSE, no flips),
  sampled with ``DDPMPipeline`` at ``num_inference_steps=calls``;
- ``ddp``: denoising-diffusion-pytorch's ``Unet(32, (1, 2, 4))`` in its ``GaussianDiffusion``
  (pred-v, sigmoid schedule), trained as its ``Trainer`` does (Adam 1e-4, betas 0.9/0.99, grad clip 1,
  EMA 0.995 every 10 steps, random horizontal flips), sampled with its ``sample`` at
  ``sampling_timesteps=calls`` (its DDIM, eta 0, whenever calls < T).

Run from the project root with the peers installed (``pip install -e .[bench]``; ``source
scripts/env.sh`` for the Inception weights): ``python benchmarks/quality.py`` (1 h 45 min on 2
cores at the defaults, most of it the peers' sampling). Writes ``benchmarks/quality.json`` (rewritten after every contender) and a
grid of each contender's first 64 samples in ``benchmarks/quality/``, and prints the table of
``benchmarks/README.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("TQDM_DISABLE", "1")  # denoising-diffusion-pytorch's sampler bar (read when tqdm is imported)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import typer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from ddpm_study import data, metrics, sampling, training, uncertainty  # noqa: E402
from ddpm_study.config import StudyConfig  # noqa: E402
from pipeline import params  # noqa: E402

from ddpm_study.runtime import autocast, derived_seed, resolve_precision  # noqa: E402
from speed import cpu_name  # noqa: E402 (this script's folder)

T, SCHEDULE, GRID = 1000, "linear", 64
CONTENDERS = ("ours", "ours-peer", "diffusers", "ddp")
PEER_MODULES = {"diffusers": "diffusers", "ddp": "denoising_diffusion_pytorch"}
JACKKNIFE_GROUPS, MIN_IMAGES = 50, 10  # the study's jackknife groups (fewer when N is smaller)

# A contender: fit(steps) trains a fresh model for that many steps and returns sample(n, batch) ->
# uint8 [n, 1, 28, 28], drawn at the run's number of network calls.
Sampler = Callable[[int, int], torch.Tensor]


@dataclasses.dataclass
class Setting:
    images: torch.Tensor  # uint8 [N, 1, 28, 28], the training set
    calls: int
    seed: int
    device: torch.device
    precision: str  # resolved: bf16 | fp32
    workdir: Path

    def batch(self, step: int, size: int) -> torch.Tensor:
        """uint8 batch ``step`` of the seeded epoch order every contender shares."""
        return self.images[training.batch_indices(len(self.images), size, step, self.seed)].to(self.device)


def ours(cfg: StudyConfig, s: Setting, peer_size: bool) -> Callable[[int], Sampler]:
    model_cfg = cfg.model
    if peer_size:
        model_cfg = dataclasses.replace(model_cfg, base_channels=32, num_res_blocks=2)
    diffusion = cfg.gaussian_diffusion(SCHEDULE)
    spaced = diffusion.respace(s.calls)

    def fit(steps: int) -> Sampler:
        train_cfg = dataclasses.replace(cfg.train, steps=steps, processes=1)
        lineage = {"model": {**dataclasses.asdict(model_cfg), "channel_mults": list(model_cfg.channel_mults)},
                   "benchmark": "quality", "steps": steps, "precision": s.precision}
        result = training.train(schedule=SCHEDULE, diffusion=diffusion, images=s.images, model_cfg=model_cfg,
                                train_cfg=train_cfg, seed=s.seed, lineage=lineage, device=s.device,
                                checkpoint_path=Path(tempfile.mkdtemp(dir=s.workdir)) / "model.pt")
        model = training.load_ema_model(result.state, s.device)

        def sample(n: int, batch: int) -> torch.Tensor:
            return sampling.generate(model, spaced, num_images=n, batch_size=batch, image_shape=tuple(s.images.shape[1:]),
                                     seed=s.seed, device=s.device, sampler="ddpm", eta=0.0, trajectory_images=1,
                                     trajectory_frames=2).images
        return sample
    return fit


def diffusers_recipe(s: Setting, batch_size: int) -> Callable[[int], Sampler]:
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    def fit(steps: int) -> Sampler:
        torch.manual_seed(s.seed)
        model = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64, 128),
                            layers_per_block=2, down_block_types=("DownBlock2D",) * 3,
                            up_block_types=("UpBlock2D",) * 3, norm_num_groups=8).to(s.device)
        ema = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
        lr_schedule = get_scheduler("cosine", optimizer=optimizer, num_warmup_steps=500, num_training_steps=steps)
        scheduler = DDPMScheduler(num_train_timesteps=T, beta_schedule="linear")
        model.train()
        for step in range(steps):
            x0 = data.to_model_range(s.batch(step, batch_size))  # Normalize([0.5], [0.5]) of ToTensor
            noise = torch.randn_like(x0)
            t = torch.randint(0, T, (len(x0),), device=s.device)
            with autocast(s.precision, s.device):
                pred = model(scheduler.add_noise(x0, noise, t), t).sample
                loss = F.mse_loss(pred.float(), noise.float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            lr_schedule.step()
            optimizer.zero_grad()
            ema.step(model.parameters())
        ema.copy_to(model.parameters())  # the script samples (and saves) the EMA weights
        pipeline = DDPMPipeline(unet=model.eval(), scheduler=scheduler)
        pipeline.set_progress_bar_config(disable=True)

        def sample(n: int, batch: int) -> torch.Tensor:
            out = []
            for b, start in enumerate(range(0, n, batch)):
                generator = torch.Generator(device=s.device).manual_seed(derived_seed(s.seed, b))
                images = pipeline(batch_size=min(batch, n - start), generator=generator, num_inference_steps=s.calls,
                                  output_type="np").images  # [b, H, W, 1] in [0, 1]
                out.append(torch.from_numpy((images * 255).round().astype(np.uint8)).permute(0, 3, 1, 2))
            return torch.cat(out)
        return sample
    return fit


def ddp_recipe(s: Setting, batch_size: int) -> Callable[[int], Sampler]:
    from denoising_diffusion_pytorch import GaussianDiffusion as DDPGaussianDiffusion, Unet
    from ema_pytorch import EMA

    def fit(steps: int) -> Sampler:
        torch.manual_seed(s.seed)
        unet = Unet(dim=32, dim_mults=(1, 2, 4), channels=1)
        diffusion = DDPGaussianDiffusion(unet, image_size=28, timesteps=T, sampling_timesteps=s.calls).to(s.device)
        ema = EMA(diffusion, beta=0.995, update_every=10).to(s.device)
        optimizer = torch.optim.Adam(diffusion.parameters(), lr=1e-4, betas=(0.9, 0.99))
        diffusion.train()
        for step in range(steps):
            x = s.batch(step, batch_size).float() / 255  # ToTensor: its GaussianDiffusion normalises [0, 1] itself
            flip = torch.rand(len(x), 1, 1, 1, device=s.device) < 0.5  # its Dataset's RandomHorizontalFlip
            x = torch.where(flip, x.flip(-1), x)
            with autocast(s.precision, s.device):
                loss = diffusion(x)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(diffusion.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            ema.update()
        network = ema.ema_model.eval()

        def sample(n: int, batch: int) -> torch.Tensor:
            out = []
            for b, start in enumerate(range(0, n, batch)):
                torch.manual_seed(derived_seed(s.seed, b))  # its sampler draws from torch's global generator
                images = network.sample(batch_size=min(batch, n - start))  # [0, 1]
                out.append((images.clamp(0, 1) * 255).round().to(torch.uint8).cpu())
            return torch.cat(out)
        return sample
    return fit


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable, device: torch.device):
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def train_for(fit: Callable[[int], Sampler], budget_s: float, calibration_steps: int, tolerance: float, max_attempts: int,
              device: torch.device) -> tuple[Sampler, list[dict]]:
    """Train for ``budget_s`` of wall time: a step count from two throwaway runs, corrected while off.

    Two throwaway runs of c and 2c steps give the time per step (their difference) and the set-up
    time. This machine's speed drifts by 10 % and more over minutes, so a run whose wall time is
    off the budget by more than ``tolerance`` (relative) is trained again from scratch with the
    step count scaled by what it missed, up to ``max_attempts`` runs; the run closest to the budget
    is kept and comes last in the returned attempts (each with steps, train_s and what predicted them).
    """
    (_, short_s), (_, long_s) = (timed(lambda: fit(n), device) for n in (calibration_steps, 2 * calibration_steps))
    # The difference is the time of c steps; with c small it can drown in the machine's noise (a busy CPU made it
    # 0 once, and 1e-6 s per step meant millions of steps): never below a fifth of the long run's mean per step.
    step_s = max(long_s - short_s, 0.2 * long_s / 2) / calibration_steps
    setup_s = max(short_s - calibration_steps * step_s, 0.0)
    steps = max(1, round((budget_s - setup_s) / step_s))
    attempts, best = [], None
    for _ in range(max_attempts):
        sample, train_s = timed(lambda: fit(steps), device)
        attempts.append({"steps": steps, "train_s": train_s, "predicted_s_per_step": step_s, "predicted_setup_s": setup_s})
        print(f"  {steps} steps in {train_s:.0f} s (budget {budget_s:.0f} s)", file=sys.stderr, flush=True)
        if best is None or abs(train_s - budget_s) < abs(best[1]["train_s"] - budget_s):
            best = (sample, attempts[-1])
        if abs(train_s / budget_s - 1) <= tolerance:
            break
        # The same floor as above: a run shorter than the predicted set-up (the machine sped up) once gave 1e-6 s
        # per step and hundreds of thousands of steps for a 3-s budget (a CI run timed out): at least a fifth of it.
        step_s = max(train_s - setup_s, 0.2 * train_s) / steps
        steps = max(1, round((budget_s - setup_s) / step_s))
    attempts.remove(best[1])
    return best[0], [*attempts, best[1]]


def scores(reference: np.ndarray, floor: np.ndarray, features: dict[str, np.ndarray], seed: int) -> dict:
    """FID ± jackknife std of each generated set and of the floor split; each peer's difference from ours."""
    groups = min(JACKKNIFE_GROUPS, len(reference))
    jack = uncertainty.jackknife_fid(reference, {"floor": floor, **features}, groups, (seed, 0))
    out = {name: {"fid": uncertainty.frechet_distance(feats, reference), "fid_std": uncertainty.jackknife_std(jack[name])}
           for name, feats in {"floor": floor, **features}.items()}
    if "ours" in features:
        for name in features:
            if name != "ours":
                out[name]["minus_ours"] = uncertainty.compare(out[name]["fid"], out["ours"]["fid"], jack[name], jack["ours"])
    return out


def main(
    out: Path = typer.Option(ROOT / "benchmarks" / "quality.json", help="JSON results (rewritten after every contender)"),
    grids: Path = typer.Option(ROOT / "benchmarks" / "quality", help="folder for each contender's sample grid"),
    minutes: float = typer.Option(6.0, help="training wall time per contender"),
    images: int = typer.Option(1000, help="N: samples per contender and real images in the reference split"),
    calls: int = typer.Option(100, help="network calls per sample (the samplers' step count)"),
    contenders: str = typer.Option(",".join(CONTENDERS), help=f"comma-separated, from: {', '.join(CONTENDERS)}"),
    calibration_steps: int = typer.Option(20, help="c: throwaway runs of c and 2c steps turn the minutes into steps"),
    tolerance: float = typer.Option(0.05, help="largest relative miss of the training budget before a run is redone"),
    max_attempts: int = typer.Option(3, help="training runs per contender at most (the closest to the budget is kept)"),
    batch_size: int = typer.Option(64, help="training batch, all contenders"),
    sample_batch: int = typer.Option(250, help="sampling batch"),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    source_dir: str = typer.Option("auto", help="folder of the official Fashion-MNIST files; auto = Debian's"),
) -> None:
    # Every argument checked before anything expensive starts.
    names = [c.strip() for c in contenders.split(",") if c.strip()]
    for name in names:
        if name not in CONTENDERS:
            raise typer.BadParameter(f"unknown contender {name!r}; valid: {', '.join(CONTENDERS)}", param_hint="--contenders")
        if name in PEER_MODULES:
            try:
                __import__(PEER_MODULES[name])
            except ImportError:
                raise typer.BadParameter(f"{name} needs {PEER_MODULES[name]}: pip install -e .[bench]", param_hint="--contenders") from None
    if not names:
        raise typer.BadParameter(f"no contender; valid: {', '.join(CONTENDERS)}", param_hint="--contenders")
    if not 1 <= calls <= T:
        raise typer.BadParameter(f"must be in 1..{T}, got {calls}", param_hint="--calls")
    if minutes <= 0 or calibration_steps < 1 or batch_size < 1 or sample_batch < 1 or max_attempts < 1 or tolerance < 0:
        raise typer.BadParameter("--minutes, --calibration-steps, --batch-size, --sample-batch and --max-attempts must be > 0, "
                                 "--tolerance >= 0")
    if not MIN_IMAGES <= images <= 30_000:  # two disjoint real splits of N from the 60,000 training images
        raise typer.BadParameter(f"must be in {MIN_IMAGES}..30000, got {images}", param_hint="--images")
    cfg = params.load(ROOT / "params.yaml")
    dev = torch.device(device)

    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        splits = data.locate_and_load("fashion_mnist", Path(tmp) / "raw", source_dir, download=False)
        train_images = torch.from_numpy(splits.train_images)
        s = Setting(images=train_images, calls=calls, seed=seed, device=dev,
                    precision=resolve_precision(cfg.train.precision, dev), workdir=Path(tmp))
        idx_ref, idx_floor = data.real_splits(len(train_images), images, seed)
        real = {split: metrics.inception_features(train_images[np.sort(idx)], cfg.evaluate.batch_size, dev).numpy()
                for split, idx in (("reference", idx_ref), ("floor", idx_floor))}
        builders = {"ours": lambda: ours(cfg, s, peer_size=False), "ours-peer": lambda: ours(cfg, s, peer_size=True),
                    "diffusers": lambda: diffusers_recipe(s, batch_size), "ddp": lambda: ddp_recipe(s, batch_size)}
        result = {
            "machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                        "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"},
            "setting": {"dataset": "fashion_mnist", "train_images": len(train_images), "batch": batch_size,
                        "budget_s": minutes * 60, "tolerance": tolerance, "images": images, "calls": calls, "seed": seed,
                        "train_precision": s.precision, "sample_precision": "fp32", "schedule_ours": SCHEDULE,
                        "jackknife_groups": min(JACKKNIFE_GROUPS, images)},
            "contenders": {},
        }
        features = {}
        grids.mkdir(parents=True, exist_ok=True)
        for name in names:
            print(f"{name}: training", file=sys.stderr, flush=True)
            sample, attempts = train_for(builders[name](), minutes * 60, calibration_steps, tolerance, max_attempts, dev)
            steps, train_s = attempts[-1]["steps"], attempts[-1]["train_s"]
            samples, sample_s = timed(lambda: sample(images, sample_batch), dev)
            sampling.save_grid(samples[:GRID], grids / f"{name}.png")
            print(f"{name}: sampled in {sample_s / 60:.1f} min", file=sys.stderr, flush=True)
            features[name] = metrics.inception_features(samples, cfg.evaluate.batch_size, dev).numpy()
            result["contenders"][name] = {"steps": steps, "train_s": train_s, "images_seen": steps * batch_size,
                                          "attempts": attempts,
                                          "sample_s": sample_s, "grid": str((grids / f"{name}.png").relative_to(ROOT))
                                          if grids.resolve().is_relative_to(ROOT) else str(grids / f"{name}.png")}
            # Rescored with every contender added: the jackknife pairs all sets (same dropped groups).
            scored = scores(real["reference"], real["floor"], features, seed)
            result["floor"] = scored.pop("floor")
            for key, row in scored.items():
                result["contenders"][key].update(row)
            out.write_text(json.dumps(result, indent=2) + "\n")
            print(f"{name}: {steps} steps in {train_s / 60:.1f} min, FID {result['contenders'][name]['fid']:.2f}", file=sys.stderr, flush=True)
    print(table(result))


def table(result: dict) -> str:
    m, st = result["machine"], result["setting"]
    lines = [f"{m['cpu']} ({m['device']}), {m['threads']} threads, torch {m['torch']}; {st['budget_s'] / 60:g} min of training "
             f"each ({st['train_precision']}), batch {st['batch']}; N = {st['images']} samples at {st['calls']} network calls (fp32); "
             f"FID against {st['images']} real training images, real-vs-real floor {result['floor']['fid']:.2f} ± {result['floor']['fid_std']:.2f}", "",
             "| contender | steps | images seen | train min | sample min | FID ± std | FID − ours ± std |", "|---|---|---|---|---|---|---|"]
    for name, row in result["contenders"].items():
        diff = row.get("minus_ours")
        lines.append(f"| {name} | {row['steps']} | {row['images_seen']:,} | {row['train_s'] / 60:.1f} | {row['sample_s'] / 60:.1f} | "
                     f"{row['fid']:.2f} ± {row['fid_std']:.2f} | " + (f"{diff['diff']:+.2f} ± {diff['std']:.2f}" if diff else "") + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    typer.run(main)
