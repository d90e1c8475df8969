"""What a folder of your own images costs on this machine (README, "Your own images").

1,000 random 128x96 images (PNG and JPEG, two class folders): decoding, resizing and centre-cropping them
(``data.load_folder``) at 32x32 RGB and at 64x64 grey; then the default model's training throughput at
each size (60 steps of ``params.yaml``'s model and batch, bf16 where native; the mean of the logged
windows after the first) and the sampling time of 1,000 images with 100 DDPM steps. Writes
benchmarks/folder_cost.json.  Run from the project root: ``python benchmarks/folder_cost.py``.
"""
import sys, time, tempfile, json
from pathlib import Path
import numpy as np, torch
from PIL import Image
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from ddpm_study import data, training
from ddpm_study.config import StudyConfig
from ddpm_study.samplers import sample_loop
import yaml
out = {}
with tempfile.TemporaryDirectory() as d:
    root = Path(d) / "imgs"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(500):
            Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    for size, ch in ((32, 3), (64, 1)):
        t = time.perf_counter(); s = data.load_folder(root, size, ch); dt = time.perf_counter() - t
        out[f"prepare_{ch}x{size}_s_per_1000"] = dt
        raw = yaml.safe_load(open(ROOT / "params.yaml")); raw.pop("extended")
        raw["data"].update(dataset="folder", source_dir=str(root), image_size=size, channels=ch)
        raw["train"].update(steps=60, log_every=20, checkpoint_every=60, warmup_steps=10)
        cfg = StudyConfig.from_dict(raw)
        imgs = torch.from_numpy(s.train_images)
        diff = cfg.gaussian_diffusion("linear")
        t = time.perf_counter()
        res = training.train(schedule="linear", diffusion=diff, images=imgs, model_cfg=cfg.model, train_cfg=cfg.train, seed=0,
                             lineage={"model": cfg.to_dict()["model"]}, device=torch.device("cpu"), checkpoint_path=Path(d) / f"c{size}.pt")
        rows = res.history
        out[f"train_{ch}x{size}_img_per_s"] = float(np.mean([r["images_per_s"] for r in rows[1:]]))
        model = training.load_ema_model(res.state, torch.device("cpu"))
        sp = diff.respace(100)
        x = torch.randn(100, ch, size, size)
        t = time.perf_counter(); sample_loop(sp, model, x, torch.Generator().manual_seed(0)); dt = time.perf_counter() - t
        out[f"sample_{ch}x{size}_s_per_1000_images_100_steps"] = dt * 10
lscpu = open("/proc/cpuinfo").read()
out["cpu"] = [l.split(":")[1].strip() for l in lscpu.splitlines() if l.startswith("model name")][0]
(ROOT / "benchmarks" / "folder_cost.json").write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps(out, indent=1))
