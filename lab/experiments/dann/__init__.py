"""Where should the gradient reversal layer go? DANN with the GRL at each placement, over seeds.

* ``config``    — the declared settings (``DANNConfig``) and the task registry (``TASKS``);
* ``data``      — ``load_task``: the source → target pair of a task (digit pairs, style domains, Office-Home);
* ``run``       — ``run_dann``: one label network per (placement, seed), source/target accuracy per epoch, and the
  proxy A-distance between the domains' backbone features (and between the raw images, for reference);
* ``results``   — ``DANNResult`` (per-placement table, mean ± std over seeds; ``save(run)``) and ``load_result``;
* ``reference`` — the seed's reported numbers and the published one, shown beside ours.
"""
