"""The shipped diffusion models: the DDIM round trip reconstructs real test digits and faces, and the samples
are digits, garments and faces that the lab's judges recognise. Skipped (with the reason) where a model is
not shipped."""
import pytest
import torch
from conftest import needs_checkpoints, needs_face_api, needs_mnist, needs_utkface

from lab.data import load_dataset
from lab.diffusion.samplers import ddim_invert, ddim_sample
from lab.models.store import load_diffusion

shipped = needs_checkpoints


# Measured on these 16 MNIST test digits: the full chain (t = 999) with 50 steps gives MSE ≈ 0.004 in [-1, 1]
# units (PSNR ≈ 30 dB). The bound leaves room for BLAS differences; another digit is at MSE ≈ 0.6.
ROUND_TRIP_MSE_BOUND = 0.01
# The face DDPM, inverted to the editing t0 with 20 steps each way: MSE 0.0008 on these 8 faces (another face: 0.43)
FACE_T0, FACE_STEPS, FACE_ROUND_TRIP_MSE_BOUND = 500, 20, 0.005
FACE_FID_RATIO = 0.7      # face-api FID of 32 samples / that of 32 noise images (measured 0.27 / 0.52 = 0.52)
FASHION_CONFIDENT = 0.45  # classifier-fashion confident fraction of 100 samples (measured 0.57; noise 0.22)


@shipped("ddpm-mnist")
@needs_mnist
def test_ddim_inversion_then_sampling_reconstructs_real_test_digits():
    model = load_diffusion("ddpm-mnist", device="cpu")
    x0 = load_dataset("mnist", "test", limit=16).to_float()      # [-1, 1], balanced over digits
    latent = ddim_invert(model.unet, x0, model.scheduler, num_steps=50)
    assert latent.std() > 0.5, "the inverted latent should look like noise, not like the image"
    back = ddim_sample(model.unet, latent, model.scheduler, num_steps=50, snapshots=2, clip=False).samples
    mse = ((back - x0) ** 2).mean().item()
    assert mse < ROUND_TRIP_MSE_BOUND, f"round-trip MSE {mse:.4f}"
    # and it is this image that comes back, not some other digit
    other = ((back - x0.roll(1, dims=0)) ** 2).mean().item()
    assert other > 10 * mse


@pytest.mark.parametrize("model_name, classifier, confident, entropy", [
    pytest.param("ddpm-mnist", "classifier-mnist", 0.7, 0.9, marks=shipped("ddpm-mnist", "classifier-mnist")),
    pytest.param("ddpm-fashion", "classifier-fashion", FASHION_CONFIDENT, 0.85,
                 marks=shipped("ddpm-fashion", "classifier-fashion")),
])
def test_shipped_ddpm_samples_are_recognisable_items_of_every_class(model_name, classifier, confident, entropy):
    from lab.metrics.quality import sample_quality

    model = load_diffusion(model_name, device="cpu")
    noise = torch.randn(100, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    samples = ddim_sample(model.unet, noise, model.scheduler, num_steps=25, snapshots=2).samples
    quality = sample_quality(samples, classifier)
    assert quality["confident_fraction"] > confident
    assert quality["class_entropy"] > entropy * torch.log(torch.tensor(10.0)).item()


@shipped("score-mnist", "classifier-mnist")
def test_shipped_score_model_draws_digits_with_its_cards_sampler_and_only_when_preconditioned():
    """The VE score model with the sampler its card recommends: 60 samples the classifier reads as digits of
    most classes. Without EDM's preconditioning (the bare diffusers UNet) the same weights give no digits."""
    from lab.experiments.denoise.compare import sampler_settings
    from lab.experiments.denoise.config import DenoiseConfig
    from lab.experiments.denoise.sample import initial_noise, sample
    from lab.metrics.quality import sample_quality
    from lab.models.loaded import LoadedModel
    from lab.models.unet import build_unet

    model = load_diffusion("score-mnist", device="cpu")
    assert model.info["score"]["preconditioning"]["name"] == "edm"
    config = DenoiseConfig(model="score-mnist", device="cpu", bf16=True, **sampler_settings(model.info))
    noise = initial_noise(model, 60, 0, model.device)
    quality = sample_quality(sample(model, config, noise).samples, "classifier-mnist")
    assert quality["confident_fraction"] > 0.6 and quality["class_entropy"] > 0.85 * torch.log(torch.tensor(10.0))
    bare = build_unet("gray28", "score")
    bare.load_state_dict(model.unet.state_dict())
    plain = LoadedModel(bare.eval(), model.scheduler, "score", model.source, model.info)
    broken = sample_quality(sample(plain, config, noise).samples, "classifier-mnist")
    assert broken["confident_fraction"] < quality["confident_fraction"] - 0.3


@shipped("ddpm-utkface64")
@needs_utkface
def test_face_ddpm_round_trip_reconstructs_real_test_faces():
    model = load_diffusion("ddpm-utkface64", device="cpu")
    x0 = load_dataset("utkface", "test", size=64, limit=8).to_float()
    latent = ddim_invert(model.unet, x0, model.scheduler, num_steps=FACE_STEPS, t0=FACE_T0)
    back = ddim_sample(model.unet, latent, model.scheduler, num_steps=FACE_STEPS, snapshots=2, clip=False,
                       t0=FACE_T0).samples
    mse = ((back - x0) ** 2).mean().item()
    assert mse < FACE_ROUND_TRIP_MSE_BOUND, f"round-trip MSE {mse:.4f}"
    assert ((back - x0.roll(1, dims=0)) ** 2).mean().item() > 5 * mse


@shipped("ddpm-utkface64")
@needs_utkface
@needs_face_api
def test_face_ddpm_samples_are_closer_to_faces_than_noise_is():
    from lab.metrics.fid import fid_kid

    model = load_diffusion("ddpm-utkface64", device="cpu")
    noise = torch.randn(32, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    samples = ddim_sample(model.unet, noise, model.scheduler, num_steps=20, snapshots=2).samples
    real = load_dataset("utkface", "test", size=64, limit=32).to_float()
    fid_samples = fid_kid(samples, real, "face-api", kid=False).fid
    fid_noise = fid_kid(noise.clamp(-1, 1), real, "face-api", kid=False).fid
    assert fid_samples < FACE_FID_RATIO * fid_noise, (fid_samples, fid_noise)
