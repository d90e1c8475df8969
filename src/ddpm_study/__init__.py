"""ddpm_study: the library of the noise-schedule study.

Schedules and their registry (``schedules``), diffusion maths (``diffusion``), the U-Net
(``unet``), data sets (``data``), training and checkpoints (``training``), sampling
(``sampling``), Inception features and KID (``metrics``), the exact FID and its jackknife spreads
(``uncertainty``), trivial generators (``baselines``), the typed configuration (``config``) and its
strict loader (``strict``), expected failures (``errors``), atomic file and array I/O (``files``),
device and seeding (``runtime``). It never reads params.yaml, never talks to MLflow or DVC and
never downloads anything but a data set it is explicitly asked to fetch.
"""
