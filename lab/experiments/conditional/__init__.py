"""Class-conditional sampling: five ways to condition a diffusion model, judged on the same data.

* ``config``  — the declared settings (``ConditionalConfig``, ``SweepConfig``, ``CompareConfig``);
* ``methods`` — the registry of conditioning methods (one file each), each ``prepare(config) -> Conditioner``;
* ``sample``  — ``run_grid``: one row per class from the same noise in every row, then the measures;
* ``measure`` — the independent judge: conditional accuracy and FID on its features, per class and overall;
* ``compare`` — ``run_compare``: several methods on the same classes, noise, sampler and judge;
* ``sweep``   — ``run_sweep``: one method at several guidance scales.
"""
