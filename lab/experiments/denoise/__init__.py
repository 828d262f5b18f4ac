"""Denoising steps: trajectories of DDPM/DDIM and annealed-Langevin sampling, step-count sweeps, quality.

* ``config``  — the declared settings (``DenoiseConfig``, ``SweepConfig``, ``QualityConfig``);
* ``sample``  — ``run_denoise`` (the N × K trajectory grid), ``sample_many``, ``run_step_sweep``;
* ``quality`` — ``run_quality``: FID/KID against real images, the real-vs-real floor, classifier quality.
"""
