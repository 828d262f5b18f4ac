"""The shipped MNIST diffusion models: the DDIM round trip reconstructs real test digits, and the samples
are digits the shipped classifier recognises. Skipped (with the reason) where a model is not shipped."""
import torch

from conftest import needs_checkpoints, needs_mnist
from lab.data import load_dataset
from lab.diffusion.samplers import ddim_invert, ddim_sample
from lab.models.store import load_diffusion

shipped = needs_checkpoints


# Measured on these 16 MNIST test digits: the full chain (t = 999) with 50 steps gives MSE ≈ 0.004 in [-1, 1]
# units (PSNR ≈ 30 dB). The bound leaves room for BLAS differences; another digit is at MSE ≈ 0.6.
ROUND_TRIP_MSE_BOUND = 0.01


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


@shipped("ddpm-mnist")
@needs_checkpoints("classifier-mnist")
def test_shipped_ddpm_samples_are_recognisable_digits_of_every_class():
    from lab.metrics.quality import sample_quality

    model = load_diffusion("ddpm-mnist", device="cpu")
    noise = torch.randn(100, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    samples = ddim_sample(model.unet, noise, model.scheduler, num_steps=25, snapshots=2).samples
    quality = sample_quality(samples, "classifier-mnist")
    assert quality["confident_fraction"] > 0.7           # noise scores ≈ 0
    assert quality["class_entropy"] > 0.9 * torch.log(torch.tensor(10.0)).item()
