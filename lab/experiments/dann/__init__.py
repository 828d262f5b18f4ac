"""Where should the gradient reversal layer go, and which adversary? DANN, CDAN and CDAN+E with the GRL at each
placement, over seeds.

* ``config``    — the declared settings (``DANNConfig``: placements × methods = the rows) and the task registry;
* ``data``      — ``load_task``: the source → target pair of a task (digit pairs, style domains, Office-Home), with the
  USPS rendering of each split;
* ``run``       — ``run_dann``: one label network per (placement, method, seed), source/target accuracy per epoch, and
  the proxy A-distance between the domains on the backbone's output and on what each discriminator sees (and
  between the raw images, for reference);
* ``results``   — ``DANNResult`` (one row per placement and method, mean ± std over seeds; ``save(run)``) and
  ``load_result``;
* ``table``     — the displayed table and the verdict in plain words;
* ``reference`` — the seed's reported numbers and the published ones, and ours beside them.
"""
