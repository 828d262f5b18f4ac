"""Short real training runs: the loss falls, accuracy beats chance, resume is exact, folders reload."""
import json
import shutil

import pytest
import torch
from conftest import needs_mnist
from diffusers import DDPMPipeline

from lab.errors import Cancelled, LabError
from lab.models.store import load_classifier, load_diffusion
from lab.train.config import TrainConfig
from lab.train.recipes import train_classifier, train_diffusion


def _first_last(losses, k=3):
    values = [v for _, v in losses]
    return sum(values[:k]) / k, sum(values[-k:]) / k


@needs_mnist
@pytest.mark.parametrize("kind, cpu_bf16", [("ddpm", False), ("score", False), ("ddpm", True)])
def test_short_diffusion_training_lowers_the_loss(tmp_path, kind, cpu_bf16):
    config = TrainConfig(steps=40, batch_size=32, lr=2e-3, warmup=5, log_every=4, checkpoint_every=100,
                         device="cpu", cpu_bf16=cpu_bf16)
    out = train_diffusion(kind, tmp_path / kind, data="mnist", limit=512, config=config)
    info = json.loads((out / "training.json").read_text())
    first, last = _first_last(info["losses"])
    assert last < 0.6 * first, info["losses"]
    model = load_diffusion(out)
    assert model.kind == kind and model.size == 28 and model.channels == 1
    assert info["command"] == "" and info["steps"] == 40 and "wall_seconds" in info
    assert (out / "README.md").read_text().count("## How it was trained") == 1


@needs_mnist
def test_classifier_learns_well_above_chance(tmp_path):
    config = TrainConfig(steps=120, batch_size=64, lr=2e-3, warmup=10, ema_decay=None, checkpoint_every=1000)
    out = train_classifier(tmp_path / "clf", data="mnist", limit=3000, config=config)
    info = json.loads((out / "training.json").read_text())
    assert info["metrics"]["test_accuracy"] > 0.8  # chance is 0.1
    assert load_classifier(out).config.num_classes == 10


@needs_mnist
def test_resume_continues_exactly(tmp_path):
    config = TrainConfig(steps=6, batch_size=8, checkpoint_every=3, log_every=1)
    straight = train_diffusion("ddpm", tmp_path / "a", limit=64, config=config)

    def stop_at_3(done, total, desc):
        if done == 3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        train_diffusion("ddpm", tmp_path / "b", limit=64, config=config, progress=stop_at_3)
    assert json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())["step"] == 3
    resumed = train_diffusion("ddpm", tmp_path / "b", limit=64, config=config)
    a, b = load_diffusion(straight).unet.state_dict(), load_diffusion(resumed).unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@needs_mnist
def test_saved_folder_is_a_diffusers_pipeline(tmp_path):
    out = train_diffusion("ddpm", tmp_path / "m", limit=32, config=TrainConfig(steps=2, batch_size=8))
    pipe = DDPMPipeline.from_pretrained(out)
    images = pipe(batch_size=1, num_inference_steps=2, output_type="np").images
    assert images.shape == (1, 28, 28, 1)


@needs_mnist
def test_corrupt_and_wrong_folders_are_clear_errors(tmp_path):
    out = train_diffusion("ddpm", tmp_path / "m", limit=32, config=TrainConfig(steps=1, batch_size=8))
    weights = out / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated download
    with pytest.raises(LabError, match="corrupt"):
        load_diffusion(out)
    with pytest.raises(LabError, match="not a diffusion model folder"):
        load_diffusion(tmp_path)
    with pytest.raises(LabError, match="No model folder"):
        load_diffusion(tmp_path / "nowhere")
    shutil.rmtree(out / "checkpoint")
    (out / "checkpoint").mkdir()
    (out / "checkpoint" / "state.json").write_text("{broken")
    with pytest.raises(LabError, match="cannot be resumed"):
        train_diffusion("ddpm", out, limit=32, config=TrainConfig(steps=2, batch_size=8))


def test_bad_training_settings():
    with pytest.raises(LabError, match="learning rate"):
        TrainConfig(lr=5).validate()
    with pytest.raises(LabError, match="steps"):
        TrainConfig(steps=0).validate()


@needs_mnist
def test_init_from_continues_from_saved_weights_and_refuses_another_kind(tmp_path):
    config = TrainConfig(steps=2, batch_size=8, checkpoint_every=100, log_every=1, ema_decay=None)
    first = train_diffusion("ddpm", tmp_path / "first", limit=32, config=config)
    zero = TrainConfig(steps=1, batch_size=8, lr=1e-12, warmup=0, checkpoint_every=100, ema_decay=None)
    again = train_diffusion("ddpm", tmp_path / "again", limit=32, config=zero, init_from=str(first))
    a, b = load_diffusion(first).unet.state_dict(), load_diffusion(again).unet.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)       # it started where the first one ended
    assert json.loads((again / "training.json").read_text())["init_from"] == str(first)
    score = train_diffusion("score", tmp_path / "score", limit=32, config=config)
    with pytest.raises(LabError, match="score model"):
        train_diffusion("ddpm", tmp_path / "bad", limit=32, config=config, init_from=str(score))


def _attention_kernels(device, bf16):
    """The aten attention ops a forward + backward pass runs inside ``training_attention(device, bf16)``."""
    from torch.profiler import ProfilerActivity, profile

    from lab.device import training_attention
    q = torch.randn(2, 4, 49, 16, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof, training_attention(device, bf16):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
        out.float().sum().backward()
    return {e.key for e in prof.key_averages() if "attention" in e.key}


def test_cpu_bf16_training_uses_the_math_attention_kernel():
    """The flash kernel is slow backwards on CPU under bf16 (a DDPM step 1.4x slower): training steps avoid it,
    fp32 steps keep PyTorch's default (flash) kernel."""
    cpu = torch.device("cpu")
    assert not any("flash" in key for key in _attention_kernels(cpu, bf16=True))
    assert any("flash" in key for key in _attention_kernels(cpu, bf16=False))


@pytest.mark.parametrize("flags, native", [("fpu avx2 avx512f avx512_bf16", True), ("fpu amx_bf16 avx2", True),
                                           ("fpu sse4_2 avx2 avx512f", False)])
def test_cpu_bf16_is_detected_from_the_cpu_flags_and_an_emulated_one_is_warned_about(monkeypatch, tmp_path,
                                                                                      caplog, flags, native):
    """bf16 autocast on a CPU without bf16 instructions is emulated (a ddpm-mnist step 15 s against 1.9 s fp32 on
    an AVX2 EPYC): the flags say which, and asking for it there logs one warning that says what to do."""
    import builtins

    import lab.device as device
    from lab.train.accel import mixed_precision_for

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\n", encoding="utf-8")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: real_open(cpuinfo if f == "/proc/cpuinfo" else f,
                                                                      *a, **k))
    device.cpu_bf16_native.cache_clear()
    device.warn_slow_cpu_bf16.cache_clear()
    try:
        assert device.cpu_bf16_native() is native
        with caplog.at_level("WARNING", logger="lab.device"):
            assert mixed_precision_for(torch.device("cpu"), cpu_bf16=True) == "bf16"
            with device.autocast_for(torch.device("cpu"), cpu_bf16=True):
                assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        warnings = [r.getMessage() for r in caplog.records if "bf16" in r.getMessage()]
        assert len(warnings) == (0 if native else 1)
        assert native or "Drop --bf16" in warnings[0]
    finally:
        device.cpu_bf16_native.cache_clear()
        device.warn_slow_cpu_bf16.cache_clear()
