"""``run_ssda``: translate the n′ labelled source images with the task's DiffusionCLIP model, then train the
seed's CNN on every training set (original, adapted, oracle, combined) for every seed, tested after each epoch."""
from __future__ import annotations

import time

import torch

from lab.device import resolve_device
from lab.errors import LabError
from lab.experiments.ssda.config import EditorSelectionConfig, SSDAConfig
from lab.experiments.ssda.data import load_task_data
from lab.experiments.ssda.result import SSDAResult
from lab.experiments.ssda.translate import match_channels, translate
from lab.models.store import resolve_model_path
from lab.progress import ProgressFn, part
from lab.train.cnn import CNNTrainConfig, train_cnn


def check_editor(config: SSDAConfig) -> None:
    """A missing translator is a message that says how to make one."""
    try:
        resolve_model_path(config.editor_name)
    except LabError as err:
        spec, how = config.spec, []
        try:
            resolve_model_path(spec.base_model)
        except LabError:
            how.append(f"train its base DDPM first (python -m lab train ddpm --data {spec.source} --size {spec.size} "
                       f"--out checkpoints/{spec.base_model}; hours on a CPU, a GPU helps)")
        task = config.task if config.task != "folder" else "mnist-sketch"
        how.append(f"fine-tune it with 'No model for this task? Fine-tune one here' or "
                   + EditorSelectionConfig(task=task, out=f"checkpoints/{config.editor_name}").to_command())
        raise LabError(f"{err} The translator of this task is missing: " + ", then ".join(how) + ". Or leave "
                       "'adapted' and 'combined' out.") from None


def run_ssda(config: SSDAConfig, progress: ProgressFn | None = None, record=None) -> SSDAResult:
    """Translate, then train and evaluate every (training set, seed). With ``record`` (a lab.runs.Run) the
    result is saved after every trained network, so a stopped run keeps what it finished."""
    config = config.validate().resolved()
    started = time.perf_counter()
    device = resolve_device(config.device)
    say = progress or (lambda done, total, desc: None)
    needs_editor = any(c in ("adapted", "combined") for c in config.conditions)
    if needs_editor:
        check_editor(config)  # a missing model fails here, before any data is read
    channels = 3 if config.spec.target_style == "colored" or config.spec.size > 32 else 1
    say(0, 1, f"Loading {config.label()}")
    data = load_task_data(config, channels)
    result = SSDAResult(config, originals=data.source_train.images, data={
        "source": data.source_train.name, "target": data.target_test.name, "n_labelled": len(data.source_train),
        "source_test": len(data.source_test), "target_test": len(data.target_test), "classes": data.classes,
        "size": config.spec.size, "channels": channels})
    if needs_editor:
        edited, info = translate(config.editor_name, data.source_train.images, config.translate_batch_size, device,
                                 progress=say)
        result.adapted, result.translation = match_channels(edited, channels), info
    if "oracle" in config.conditions and data.target_train is None:
        raise LabError("The oracle needs labelled target training images, which a folder task does not have: "
                       "leave 'oracle' out.")
    source = (data.source_train.images, data.source_train.labels)
    sets = {"original": source, "adapted": (result.adapted, source[1]),
            "oracle": (None, None) if data.target_train is None else (data.target_train.images,
                                                                        data.target_train.labels)}
    if result.adapted is not None:
        sets["combined"] = (torch.cat([source[0], result.adapted]), torch.cat([source[1], source[1]]))
    tests = {"source": (data.source_test.images, data.source_test.labels),
             "target": (data.target_test.images, data.target_test.labels)}
    jobs = [(c, s) for s in config.seeds for c in config.conditions]
    for k, (condition, seed) in enumerate(jobs):
        images, labels = sets[condition]
        train_config = CNNTrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=seed,
                                      device=config.device)
        desc = f"CNN {k + 1}/{len(jobs)} ({condition}, seed {seed}): {{desc}}"
        _, history = train_cnn(images, labels, len(data.classes), tests, train_config,
                               progress=part(say, k, len(jobs), desc))
        result.histories[f"{condition}/{seed}"] = history
        result.seconds = time.perf_counter() - started
        if record is not None:
            result.save(record, figures=False)
    return result
