"""Test settings: real data from ../shared/data (or LAB_DATA_DIR), offline, runs in a temp folder."""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("LAB_DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("LAB_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# one cache for the session (decoded datasets); tests of caching use their own folder
os.environ.setdefault("LAB_CACHE_DIR", tempfile.mkdtemp(prefix="lab-cache-"))
# the tests' tiny models and image folders live in a temporary root of their own (pytest's basetemp is put inside
# it below): the app may open models and images there, and nothing else of the system's temporary folder — a
# checkout that itself lies in /tmp must still see '../../etc/passwd' refused
TEST_ROOT = Path(tempfile.mkdtemp(prefix="lab-tests-"))
os.environ.setdefault("LAB_MODEL_ROOTS", str(TEST_ROOT))
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_configure(config):
    if not config.option.basetemp:
        config.option.basetemp = str(TEST_ROOT / "basetemp")


def _has(path: str) -> bool:
    return (Path(os.environ["LAB_DATA_DIR"]) / path).exists()


needs_mnist = pytest.mark.skipif(not _has("MNIST/raw"), reason="MNIST files not in LAB_DATA_DIR")
needs_fashion = pytest.mark.skipif(not _has("FashionMNIST/raw"), reason="Fashion-MNIST not in LAB_DATA_DIR")
needs_usps = pytest.mark.skipif(not _has("usps/usps.h5"), reason="usps.h5 not in LAB_DATA_DIR")
needs_utkface = pytest.mark.skipif(not _has("utkface/images"), reason="UTKFace not in LAB_DATA_DIR")


def _face_api_on_disk() -> bool:
    from lab.errors import LabError
    from lab.models.faceid import face_api_folder

    try:
        return face_api_folder() is not None
    except LabError:
        return False


needs_face_api = pytest.mark.skipif(not _face_api_on_disk(), reason="face-api weights not in LAB_WEIGHTS_DIR/face-api "
                                                                   "(nor LAB_DATA_DIR/../weights/face-api)")


def _shipped(name: str) -> bool:
    folder = ROOT / "checkpoints" / name
    return any((folder / f).exists() for f in ("model_index.json", "training.json", "open_clip_config.json"))


def needs_checkpoints(*names: str):
    """Skip, saying which, unless every named model is shipped in checkpoints/ (the cards hold their commands)."""
    missing = [n for n in names if not _shipped(n)]
    return pytest.mark.skipif(bool(missing), reason=f"checkpoints not shipped: {', '.join(missing)} "
                                                    "(each card / docs/RESULTS.md has the command that trains it)")


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path_factory, monkeypatch):
    """Every test writes its runs into its own temp folder, never into the checkout."""
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path_factory.mktemp("runs")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_tab(build, request):
    """Serve one tab (``build()`` inside a Blocks) on a free port for the requesting fixture's scope; returns a
    gradio_client.Client. For module-scoped clients; ``launch_tab`` serves a whole Blocks per test."""
    import gradio as gr
    from gradio_client import Client

    with gr.Blocks() as demo:
        build()
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True)
    request.addfinalizer(demo.close)
    return Client(url, verbose=False)


@pytest.fixture
def launch_tab():
    """Launch a Blocks app on a free port and return a gradio_client.Client for it; closes afterwards."""
    from gradio_client import Client

    apps = []

    def _launch(blocks):
        blocks.queue()
        _, url, _ = blocks.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True)
        apps.append(blocks)
        return Client(url, verbose=False)

    yield _launch
    for app in apps:
        app.close()


def _tiny_diffusion(folder: Path, kind: str) -> Path:
    """An untrained 28-px model folder: every code path runs on it in seconds (its samples are noise)."""
    from lab.diffusion.schedules import make_ddpm_scheduler, make_score_scheduler
    from lab.models.store import save_diffusion
    from lab.models.unet import build_unet

    torch.manual_seed(0)
    unet = build_unet("gray28", formulation=kind, block_out_channels=(8, 16, 16), attention_head_dim=8)
    scheduler = make_ddpm_scheduler() if kind == "ddpm" else make_score_scheduler(2.0, 0.02, 10)
    save_diffusion(folder, unet, scheduler, kind,
                   {"data": {"name": "mnist", "split": "train", "count": 0, "size": 28, "channels": 1}})
    return folder


def tiny_editor(root: Path, base_folder: Path) -> Path:
    """A 'DiffusionCLIP' model fine-tuned from the tiny base DDPM at ``base_folder`` (weights nudged), saved as
    ``root/tiny-editor`` the way the editing tab saves one."""
    from lab.models.store import load_diffusion, save_diffusion

    base = load_diffusion(base_folder, "cpu")
    torch.manual_seed(1)
    for p in base.unet.parameters():
        p.data.add_(0.01 * torch.randn_like(p))
    save_diffusion(root / "tiny-editor", base.unet, base.scheduler, "ddpm", {
        "description": "test editor", "base_model": str(base_folder),
        "diffusionclip": {"model": str(base_folder), "t0": 200, "n_inv_step": 3, "n_test_step": 3,
                          "source": "a digit", "target": "a sketch of a digit"}})
    return root / "tiny-editor"


@pytest.fixture(scope="session")
def tiny_ddpm(tmp_path_factory):
    return _tiny_diffusion(tmp_path_factory.mktemp("tiny") / "tiny-ddpm", "ddpm")


@pytest.fixture(scope="session")
def tiny_score(tmp_path_factory):
    return _tiny_diffusion(tmp_path_factory.mktemp("tiny") / "tiny-score", "score")


@pytest.fixture
def one_thread():
    """Tiny models: one thread is faster, and does not stall when the cores are busy (modules that want it for every
    test say ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """An untrained lab-clip-tiny in open_clip's local-dir layout (with the lab's vocabulary)."""
    import open_clip

    from lab.clip import ARCH, save_clip_folder, vocabulary

    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms(ARCH)
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    save_clip_folder(folder, model, {"size": 32, "mean": [0.5] * 3, "std": [0.5] * 3}, vocabulary())
    return folder


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """Broken images, odd modes, a decompression bomb, a folder that is not a model and damaged model copies, made
    once for the bad-input and validator tests (tests/helpers/bad_files.py)."""
    from helpers.bad_files import make_bad_files

    return make_bad_files(tmp_path_factory.mktemp("bad-input"))
