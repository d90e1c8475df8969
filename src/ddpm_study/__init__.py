"""ddpm_study: the library of the noise-schedule study.

Schedules (``schedules``), diffusion maths (``diffusion``), the U-Net (``unet``), data sets
(``data``), training and checkpoints (``training``), sampling (``sampling``), FID/KID
(``metrics``) and the typed configuration (``config``). It never reads params.yaml, never talks
to MLflow and never downloads anything but a data set it is explicitly asked to fetch.
"""
