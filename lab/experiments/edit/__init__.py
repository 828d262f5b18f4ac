"""DiffusionCLIP editing: invert → fine-tune a UNet copy with a directional CLIP loss → edit.

* ``config``  — the declared settings (``EditConfig``; ``SavedEditConfig`` for editing with a saved model);
* ``prompts`` — the data and source/target prompts that suit a backbone (``backbone_defaults``);
* ``run``     — ``run_edit``: fine-tune on dataset or uploaded images, edit, measure; ``EditResult``;
* ``measure`` — the CLIP direction before/after, inversion error, identity kept;
* ``saved``   — the fine-tuned model as a diffusers folder (``save_tuned``), reopened (``load_saved_edit``) and
  used without fine-tuning (``edit_saved``, ``edit_with_saved``).
"""
