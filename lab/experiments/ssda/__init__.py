"""Batch adaptation + CNN evaluation: does translating labelled source images into the target domain help?

n′ labelled source images are translated into the target domain by a DiffusionCLIP fine-tuned model (a saved one,
or one fine-tuned from the task's prompts); the seed's CNN is trained, same seed and epochs, on (a) the originals,
(b) the adapted images, (c) n′ labelled target images (the oracle) and (d) originals + adapted, and tested on the
source and the target test sets after every epoch, over several seeds.

* ``config``    — the tasks and the declared settings (``SSDAConfig``; ``EditorSelectionConfig`` of ssda-editor);
* ``data``      — the task's labelled source, oracle and test sets (``load_task_data``);
* ``translate`` — translation with a saved editor, cached batch by batch (``translate``);
* ``run``       — ``run_ssda``: translate, then train and evaluate every (training set, seed);
* ``result``    — ``SSDAResult`` (table, gain, curves, gallery, save) and ``load_result``;
* ``editor``    — fine-tuning a task's translator, and choosing one over seeds on validation images.
"""
