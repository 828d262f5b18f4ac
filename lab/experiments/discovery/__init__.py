"""Domain discovery: reconstruct and expand an unseen domain with a frozen DDPM (after Zhu et al., "Discovery and
Expansion of New Domains within Diffusion Models").

* ``config``      — the declared settings (``DiscoveryConfig`` and each action's settings);
* ``data``        — the few-shot and held-out target images, the in-domain contrast set, the frozen model;
* ``reconstruct`` — ``run_reconstruct``: DDIM inversion (η = 0) to x_{t0} and back, MSE / PSNR per t0;
* ``stats``       — ``run_stats``: norms and pairwise angles of the inverted latents against N(0, I) noise, and
  how well a linear classifier tells the sets apart;
* ``discover``    — ``run_discover``: new latents from the inverted few-shot set (slerp, mixing, a Gaussian fit)
  through the geometric filter (``lab.diffusion.latents``), generated with the frozen model;
* ``baseline``    — ``run_finetune``: the tuning baseline, ε-loss fine-tuning of a copy on the few-shot set;
* ``evaluate``    — FID against held-out target images with the real-vs-real floor, diversity, the copy check.
"""
