"""Data-parallel training and translation on accelerate: ``accelerate launch --cpu --num_processes 2`` gives what
one process gives (same seed, same global batch), a checkpoint written by two processes resumes in one, and a
two-process translation writes exactly the images and labels a one-process run writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_mnist, tiny_editor
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "helpers" / "fit_worker.py"
FINETUNE_WORKER = WORKER.with_name("finetune_worker.py")
# measured (6 steps, tiny UNet): the curves differ by at most 1.2e-7 (float rounding of the all-reduce); the weights
# by 1.3e-7 on average — a few near-zero gradients change sign in the last bit and Adam turns that into a full
# lr-sized step (largest single difference 3e-4), so weights are compared on average
TOLERANCE = 1e-5
# `accelerate launch --cpu --num_processes N` starts N processes only through MPI (mpirun), which this machine does
# not have; accelerate's torchrun launcher (--multi_gpu) starts them anywhere, and on a machine without a GPU the
# lab asks accelerate for the CPU, so they train on the CPU with the gloo backend — what `--cpu` would run
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no", "--num_processes"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _launch(processes: int, *args, worker: Path = WORKER) -> None:
    if processes == 1:
        cmd = [sys.executable, str(worker), *map(str, args)]
    else:
        cmd = [*LAUNCH, str(processes), str(worker), *map(str, args)]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _curve(folder: Path) -> list:
    return json.loads((folder / "losses.json").read_text())


def _close(a: dict, b: dict) -> bool:
    """Mean absolute difference over every weight within the tolerance."""
    total = sum(float((a[k] - b[k]).abs().sum()) for k in a)
    return set(a) == set(b) and total / sum(v.numel() for v in a.values()) <= TOLERANCE


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    _launch(1, out, 6, 0)
    return out


def test_two_processes_give_the_one_process_loss_curve(single, tmp_path):
    _launch(2, tmp_path / "two", 6, 0)
    assert json.loads((tmp_path / "two" / "processes.json").read_text()) == 2  # really two processes
    one, two = _curve(single), _curve(tmp_path / "two")
    assert [s for s, _ in one] == [s for s, _ in two] == list(range(1, 7))
    assert max(abs(a - b) for (_, a), (_, b) in zip(one, two)) <= TOLERANCE
    assert _close(load_file(single / "weights.safetensors"), load_file(tmp_path / "two" / "weights.safetensors"))


def test_a_checkpoint_written_by_two_processes_resumes_in_one(single, tmp_path):
    ckpt = tmp_path / "ckpt"
    _launch(2, tmp_path / "unused", 6, 3, ckpt)               # interrupted after step 3: the checkpoint is written
    assert json.loads((ckpt / "state.json").read_text())["step"] == 3
    _launch(1, tmp_path / "resumed", 6, 0, ckpt)              # one process takes it from there
    resumed, reference = _curve(tmp_path / "resumed"), _curve(single)
    assert [s for s, _ in resumed] == [s for s, _ in reference]
    assert max(abs(a - b) for (_, a), (_, b) in zip(resumed, reference)) <= TOLERANCE
    assert _close(load_file(single / "weights.safetensors"), load_file(tmp_path / "resumed" / "weights.safetensors"))


def test_two_process_diffusionclip_finetune_gives_the_one_process_weights(tmp_path):
    """Each process takes every other image of a batch (batch 3 → 2 + 1, each gradient weighted by its share: the
    test fails without the weights) and the gradients are averaged: the fine-tuned copy equals the one-process
    copy up to the all-reduce's rounding."""
    _launch(1, tmp_path / "one", 3, worker=FINETUNE_WORKER)
    _launch(2, tmp_path / "two", 3, worker=FINETUNE_WORKER)
    assert json.loads((tmp_path / "two" / "processes.json").read_text()) == 2
    one = load_file(tmp_path / "one" / "weights.safetensors")
    two = load_file(tmp_path / "two" / "weights.safetensors")
    assert _close(one, two)
    steps = json.loads((tmp_path / "one" / "history.json").read_text())
    assert len(steps) == len(json.loads((tmp_path / "two" / "history.json").read_text())) == 4  # 2 iterations × 2
    assert steps[-1]["total"] < steps[0]["total"]   # it learned


def _translate(processes: int, editor: Path, out: Path, cache: Path) -> None:
    args = ["translate", "--editor", str(editor), "--data", "mnist", "--split", "test", "--limit", "20",
            "--batch-size", "4", "--out", str(out), "--device", "cpu", "--threads", "1"]
    if processes == 1:
        cmd = [sys.executable, "-m", "lab", *args]
    else:
        cmd = [*LAUNCH, str(processes), "-m", "lab", *args]
    done = subprocess.run(cmd, env={**_env(), "LAB_CACHE_DIR": str(cache)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@needs_mnist
def test_two_process_translation_writes_what_one_process_writes(tiny_ddpm, tmp_path):
    import numpy as np
    from PIL import Image

    from lab.data import load_dataset

    editor = tiny_editor(tmp_path, tiny_ddpm)
    _translate(1, editor, tmp_path / "one", tmp_path / "cache1")
    _translate(2, editor, tmp_path / "two", tmp_path / "cache2")   # its own cache: every image computed again
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.png"))
    two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.png"))
    assert one == two and len(one) == 20 and len({p.name for p in one}) == 20   # each image once
    for rel in one:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "one" / rel)),
                              np.asarray(Image.open(tmp_path / "two" / rel)))
    source = load_dataset("mnist", "test", limit=20)
    back = load_dataset("folder", path=str(tmp_path / "two"), size=28, channels=1)
    assert back.classes == source.classes and sorted(back.labels.tolist()) == sorted(source.labels.tolist())
    assert json.loads((tmp_path / "two" / "translation.json").read_text())["processes"] == 2
    # resumable: a lost file is written again, the others are left alone
    lost = tmp_path / "two" / one[3]
    lost.unlink()
    kept = (tmp_path / "two" / one[0]).stat().st_mtime_ns
    _translate(1, editor, tmp_path / "two", tmp_path / "cache2")
    assert lost.exists() and (tmp_path / "two" / one[0]).stat().st_mtime_ns == kept


@needs_mnist
def test_the_prepared_gpu_script_runs_on_the_cpu(tmp_path):
    """bench/device.py --smoke: the code of the one-call GPU run, on the CPU with tiny sizes."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "device.py"), "--smoke"], capture_output=True,
                          text=True, timeout=600, env={**_env(), "LAB_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["smoke"] is True and set(out["translate"]) == {"digits", "faces"}
    digits = out["translate"]["digits"]
    if digits["measured"]:
        assert digits["images"] == 8 and digits["speedup"] > 0
    for name, train in out["train"].items():
        assert not train.get("measured", True) or (train["images_per_s"] > 0 and 0 < train["mfu"] < 1.5), name
    further = out["train_further"]["ddpm-mnist"]
    assert further["steps"] == 3 and further["init_from"] == "ddpm-mnist"
    quality = out["ddpm_mnist_quality"]
    assert quality["before"]["model"] == "ddpm-mnist" and quality["after"]["model"] == further["folder"]
    assert quality["after"]["n"] == 20 and 0 <= out["confident_fraction_ddpm"] <= 1
