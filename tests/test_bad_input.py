"""Bad input against the whole app, through gradio_client: every case gets a clear message (no traceback, no
"Unexpected error"), and the server still answers a normal request after each; an upload over the size limit is
refused by the server. The validators behind these messages are tested directly in tests/test_validators.py."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import free_port, needs_checkpoints
from helpers.bad_files import LONG, NAN

SHIPPED = ["ddpm-mnist", "cfg-mnist", "classifier-mnist", "clip-lab", "diffusionclip-mnist-sketch"]
pytestmark = needs_checkpoints(*SHIPPED)

# --- cheap, valid requests per endpoint; each case changes one or two fields ---------------------------------
DENOISE = dict(model="ddpm-mnist", sampler="ddim", steps=2, eta=0.0, langevin_steps=1, langevin_eps=2e-5,
               langevin_denoise=True, num_images=1, snapshots=2, seed=0)
COND = dict(method="cfg", model="cfg-mnist", classifier="noisy-classifier-mnist", scale=1.0, sampler="ddim", steps=2,
            eta=0.0, per_class=1, classes="0", judge="auto", fid=False, seed=0)
COMPARE = dict(methods=["cfg"], models=["label-embed=cfg-mnist", "condnorm=condnorm-mnist", "auxclf=auxclf-mnist",
                                         "classifier-guidance=ddpm-mnist", "cfg=cfg-mnist"],
               method_scales="auxclf=1, classifier-guidance=1, cfg=1", classifier="noisy-classifier-mnist",
               sampler="ddim", steps=2, eta=0.0, per_class=1, classes="0", judge="auto", fid=False, seed=0)
DANN = dict(task="usps-mnist", officehome_path="", officehome_source="Clipart", officehome_target="Real_World",
            backbone="lenet", weights="scratch", placements=["none"], seeds="0", epochs=1, steps_per_epoch=1,
            batch_size=8, optimizer="sgd", lr=0.01, lr_schedule="annealed", lambda_schedule="dann", lambda_max=1.0,
            augment=False, augment_scale=0.15, source_only_sees_target=False, source_limit=0, target_limit=0,
            eval_limit=100)
DISC = dict(model="ddpm-mnist", target="upload", target_style="plain", target_path="", upload=None, shots=2,
            in_domain="none", t0=10, steps=1, classifier="none", seed=0, t0s="10", n_images=1)
EDIT = dict(files=None, fit=False, model="ddpm-mnist", clip="clip-lab", clip_pretrained="", source="a digit",
            target="a sketch of a digit", data="mnist", n_train=1, t0=10, n_inv_step=1, n_train_step=1,
            n_test_step=1, lambda_clip=1.0, lambda_l1=0.1, lambda_id=0.0, lambda_struct=0.0, iterations=1, lr=2e-4,
            batch_size=1, variant="full", edit_n=0, save_as="", seed=0)
SAVED = dict(with_saved="diffusionclip-mnist-sketch", files=None, fit=False, data="mnist", edit_split="test",
             edit_n=1)
SSDA = dict(task="mnist-sketch", editor="diffusionclip-mnist-sketch", target_path="", n_labelled=2, n_test=1,
            conditions=["original"], seeds="0", epochs=1, batch_size=2, lr=1e-3)
BASES = {"/denoise_grid": DENOISE, "/denoise_sweep": {**DENOISE, "step_counts": "2", "metric_images": 0},
         "/denoise_quality": {**DENOISE, "fid_n": 10, "features": "classifier", "floor": False},
         "/conditional_grid": COND, "/conditional_sweep": {**COND, "scales": "1"}, "/conditional_compare": COMPARE,
         "/dann_compare": DANN, "/dann_curves": dict(run_folder="", metric="accuracy"),
         "/dann_tsne": dict(run_folder="", label="", color_by="domain"), "/discovery_reconstruct": DISC,
         "/discovery_stats": {k: v for k, v in DISC.items() if k not in ("t0s", "n_images")},
         "/edit_run": EDIT, "/edit_saved": SAVED, "/edit_check": dict(clip="clip-lab", clip_pretrained="", source="a digit",
                                                                    target="a sketch of a digit"),
         "/ssda_run": SSDA, "/ssda_reopen": dict(folder=""),
         "/ssda_finetune": dict(task="mnist-sketch", name="tuned", iterations=1),
         "/edit_vocabulary": dict(clip="clip-lab", clip_pretrained=""), "/_on_formulation": dict(formulation="x"),
         "/_on_method": dict(method="cfg")}

OUTSIDE = "outside the allowed folders"
# Values starting with "@" are files made by the `files` fixture; "@upload:a,b" uploads those files.
CASES = [
    # Denoising steps — numbers
    ("denoise-steps-negative", "/denoise_grid", dict(steps=-1), r"Steps.* must be between 1 and 1000, not -1"),
    ("denoise-steps-zero", "/denoise_grid", dict(steps=0), r"Steps.* must be between 1 and 1000, not 0"),
    ("denoise-steps-huge", "/denoise_grid", dict(steps=10**9), r"Steps.* must be between 1 and 1000, not 1e\+09"),
    ("denoise-steps-nan", "/denoise_grid", dict(steps=NAN), r"Steps.* must be a number between 1 and 1000, not 'nan'"),
    ("denoise-steps-text", "/denoise_grid", dict(steps="ten"), r"Steps.* must be a number between 1 and 1000"),
    ("denoise-steps-missing", "/denoise_grid", dict(steps=None), r"Steps.* must be a number"),
    ("denoise-images-huge", "/denoise_grid", dict(num_images=10**9), r"Number of images.* must be between 1 and 16"),
    ("denoise-eta-nan", "/denoise_grid", dict(eta=NAN), r"η.* must be a number between 0 and 1"),
    ("denoise-epsilon-zero", "/denoise_grid", dict(langevin_eps=0), r"Langevin ε must be between"),
    ("denoise-seed-negative", "/denoise_grid", dict(seed=-1), r"Seed must be between 0 and"),
    ("denoise-seed-nan", "/denoise_grid", dict(seed=NAN), r"Seed must be a number"),
    ("denoise-sweep-counts-long", "/denoise_sweep", dict(step_counts=LONG), r"Step counts must be whole numbers"),
    ("denoise-sweep-counts-empty", "/denoise_sweep", dict(step_counts=""), r"Give 1 to 6 step counts"),
    ("denoise-quality-count-zero", "/denoise_quality", dict(fid_n=0), r"Samples \(n\) must be between 10 and 10000"),
    # Denoising steps — model box
    ("denoise-model-empty", "/denoise_grid", dict(model=""), r"Choose a model|No model"),
    ("denoise-model-etc", "/denoise_grid", dict(model="/etc"), OUTSIDE),
    ("denoise-model-dotdot", "/denoise_grid", dict(model="../../etc/passwd"), OUTSIDE),
    ("denoise-model-long", "/denoise_grid", dict(model=LONG), r"characters long.*shipped model"),
    ("denoise-model-not-a-model", "/denoise_grid", dict(model="@not_a_model"), r"not a diffusion model folder.*needs"),
    ("denoise-model-truncated", "/denoise_grid", dict(model="@truncated/ddpm-mnist"),
     r"weights file .*diffusion_pytorch_model\.safetensors is damaged.*re-train or re-download"),
    # Class-conditional
    ("conditional-steps-zero", "/conditional_grid", dict(steps=0), r"Sampling steps must be between 1 and 1000"),
    ("conditional-per-class-huge", "/conditional_grid", dict(per_class=10**9),
     r"Samples per class.* must be between 1 and 200"),
    ("conditional-scale-nan", "/conditional_grid", dict(scale=NAN), r"Guidance weight w.* must be a number between"),
    ("conditional-scale-negative", "/conditional_grid", dict(scale=-1), r"Guidance weight w.* must be between 0 and"),
    ("conditional-classes-unknown", "/conditional_grid", dict(classes="11"), r"Unknown class '11'.*knows"),
    ("conditional-classes-long", "/conditional_grid", dict(classes=LONG), r"Unknown class 'x+…\(10,000 characters\)"),
    ("conditional-model-etc", "/conditional_grid", dict(model="/etc"), OUTSIDE),
    ("conditional-model-dotdot", "/conditional_grid", dict(model="../../etc/passwd"), OUTSIDE),
    ("conditional-model-not-a-model", "/conditional_grid", dict(model="@not_a_model"), r"is not a ConditionalUNet folder"),
    ("conditional-model-truncated", "/conditional_grid", dict(model="@truncated/cfg-mnist"), r"weights file .* is damaged"),
    ("conditional-classifier-etc", "/conditional_grid", dict(method="classifier-guidance", model="ddpm-mnist",
                                                             classifier="/etc"), OUTSIDE),
    ("conditional-judge-etc", "/conditional_grid", dict(judge="/etc"), OUTSIDE),
    ("conditional-judge-truncated", "/conditional_grid", dict(judge="@truncated/classifier-mnist"),
     r"weights file .* is damaged"),
    ("conditional-sweep-scales-long", "/conditional_sweep", dict(scales=LONG), r"[Ss]cale.*10,000 characters"),
    ("conditional-compare-none-ticked", "/conditional_compare", dict(methods=[]), r"Tick at least one method"),
    ("conditional-compare-model-etc", "/conditional_compare", dict(models=["cfg=/etc"]), OUTSIDE),
    ("conditional-compare-scale-huge", "/conditional_compare", dict(method_scales="cfg=1e9"), r"Classifier-free w must be"),
    # DANN
    ("dann-epochs-zero", "/dann_compare", dict(epochs=0), r"Epochs must be between 1 and 200, not 0"),
    ("dann-epochs-huge", "/dann_compare", dict(epochs=10**9), r"Epochs must be between 1 and 200"),
    ("dann-batch-negative", "/dann_compare", dict(batch_size=-1), r"Batch per domain must be between 2 and 512"),
    ("dann-lr-nan", "/dann_compare", dict(lr=NAN), r"Learning rate μ₀ must be a number, not 'nan'"),
    ("dann-seeds-empty", "/dann_compare", dict(seeds=""), r"Give 1 to 10 seeds"),
    ("dann-seeds-long", "/dann_compare", dict(seeds=LONG), r"Seeds must be whole numbers.*10,000 characters"),
    ("dann-officehome-etc", "/dann_compare", dict(task="officehome", officehome_path="/etc"), OUTSIDE),
    ("dann-officehome-not-a-dataset", "/dann_compare", dict(task="officehome", officehome_path="@not_a_model"),
     r"Office-Home|Art|Clipart"),
    ("dann-curves-etc", "/dann_curves", dict(run_folder="/etc"), r"is not a run folder inside"),
    ("dann-tsne-dotdot", "/dann_tsne", dict(run_folder="../../etc/passwd"), r"is not a run folder inside"),
    ("dann-tsne-empty", "/dann_tsne", dict(run_folder=""), r"Start a DANN comparison first"),
    # Domain discovery — uploads and folders
    ("discovery-upload-corrupt", "/discovery_reconstruct", dict(upload="@upload:corrupt.png,digit.png"),
     r"corrupt\.png.*not a readable image"),
    ("discovery-upload-truncated", "/discovery_reconstruct", dict(upload="@upload:truncated.png,digit.png"),
     r"truncated\.png.*not a readable image"),
    ("discovery-upload-1x1", "/discovery_reconstruct", dict(upload="@upload:tiny.png,digit.png"),
     r"tiny\.png is only 1×1 px.*at least 8×8"),
    ("discovery-upload-10000x10000", "/discovery_reconstruct", dict(upload="@upload:bomb.png,digit.png"),
     r"bomb\.png is too large.*at most 40 megapixels"),
    ("discovery-upload-7000x7000", "/discovery_reconstruct", dict(upload="@upload:big.png,digit.png"),
     r"big\.png is too large \(7000×7000 px\)"),
    ("discovery-upload-cmyk-palette-16bit-rgba-la", "/discovery_reconstruct",  # converted: the run works
     dict(upload="@upload:cmyk.png,palette.png,grey16.png,rgba.png,la.png"), None),
    ("discovery-upload-none", "/discovery_reconstruct", dict(upload=[]), r"No images were uploaded"),
    ("discovery-folder-etc", "/discovery_reconstruct", dict(target="folder", target_path="/etc"), OUTSIDE),
    ("discovery-folder-dotdot", "/discovery_reconstruct", dict(target="folder", target_path="../../etc"), OUTSIDE),
    ("discovery-folder-no-images", "/discovery_reconstruct", dict(target="folder", target_path="@not_a_model"),
     r"holds no images"),
    ("discovery-model-etc", "/discovery_stats", dict(model="/etc"), OUTSIDE),
    ("discovery-model-truncated", "/discovery_stats", dict(model="@truncated/ddpm-mnist"), r"is damaged"),
    ("discovery-classifier-dotdot", "/discovery_stats", dict(classifier="../../etc/passwd"), OUTSIDE),
    ("discovery-t0s-long", "/discovery_reconstruct", dict(t0s=LONG), r"t0.*10,000 characters"),
    ("discovery-shots-negative", "/discovery_stats", dict(shots=-1), r"Few-shot target images must be between 2 and"),
    ("discovery-seed-nan", "/discovery_stats", dict(seed=NAN), r"Seed must be a number"),
    # DiffusionCLIP editing
    ("edit-upload-corrupt", "/edit_run", dict(files="@upload:corrupt.png"), r"corrupt\.png.*not a readable image"),
    ("edit-upload-1x1", "/edit_run", dict(files="@upload:tiny.png", fit=True), r"1×1 px.*at least 8×8"),
    ("edit-upload-10000x10000", "/edit_run", dict(files="@upload:bomb.png", fit=True), r"too large.*40 megapixels"),
    ("edit-upload-wrong-size", "/edit_run", dict(files="@upload:rgba.png"), r"64×64 px, but the model takes 28×28"),
    ("edit-upload-cmyk-on-grey-model", "/edit_run", dict(files="@upload:cmyk.png"),
     r"colour \(RGB\), but the model is grey.*Fit uploads"),
    ("edit-source-empty", "/edit_run", dict(source=""), r"source text is empty"),
    ("edit-target-long", "/edit_run", dict(target=LONG), r"target text is 10000 characters long; keep it under"),
    ("edit-t0-zero", "/edit_run", dict(t0=0), r"t0 \(how far to invert\) must be between 1 and 999"),
    ("edit-lr-nan", "/edit_run", dict(lr=NAN), r"Learning rate must be a number"),
    ("edit-lr-huge", "/edit_run", dict(lr=10**9), r"Learning rate must be between"),
    ("edit-iterations-huge", "/edit_run", dict(iterations=10**9), r"Iterations.* must be between 1 and 100"),
    ("edit-model-etc", "/edit_run", dict(model="/etc"), OUTSIDE),
    ("edit-model-truncated", "/edit_run", dict(model="@truncated/ddpm-mnist"), r"is damaged"),
    ("edit-clip-dotdot", "/edit_run", dict(clip="../../etc/passwd"), OUTSIDE),
    ("edit-clip-weights-etc", "/edit_run", dict(clip="ViT-B-32", clip_pretrained="/etc/passwd"), OUTSIDE),
    ("edit-clip-not-a-model", "/edit_run", dict(clip="@not_a_model"), r"not an open_clip model folder: it needs"),
    ("edit-clip-truncated", "/edit_run", dict(clip="@truncated/clip-lab"),
     r"weights file .*open_clip_model\.safetensors is damaged"),
    ("edit-save-as-path", "/edit_run", dict(save_as="../../etc/passwd"), r"is not a usable model name"),
    ("edit-check-long-prompt", "/edit_check", dict(target=LONG), "OK:characters long; keep it under"),
    ("edit-vocabulary-clip-etc", "/edit_vocabulary", dict(clip="/etc"), "OK:outside the allowed folders"),
    ("edit-vocabulary-clip-long", "/edit_vocabulary", dict(clip=LONG), "OK:characters long"),
    ("denoise-formulation-unknown", "/_on_formulation", dict(formulation="nope"), r"nope.*(choices|Unknown)"),
    ("conditional-method-unknown", "/_on_method", dict(method="nope"), r"nope.*(choices|Unknown)"),
    ("edit-saved-name-etc", "/edit_saved", dict(with_saved="/etc"), OUTSIDE),
    ("edit-saved-name-dotdot", "/edit_saved", dict(with_saved="../../etc/passwd"), OUTSIDE),
    ("edit-saved-upload-corrupt", "/edit_saved", dict(files="@upload:corrupt.png"), r"not a readable image"),
    ("edit-saved-upload-16bit-wrong-size", "/edit_saved", dict(files="@upload:grey16-big.png"),
     r"40×40 px, but the model takes 28×28"),
    ("edit-saved-n-zero", "/edit_saved", dict(edit_n=0), r"Images must be between 1 and 256"),
    # Batch adaptation
    ("ssda-labelled-negative", "/ssda_run", dict(n_labelled=-1), r"n′ labelled source images must be between 2"),
    ("ssda-epochs-zero", "/ssda_run", dict(epochs=0), r"Epochs must be between 1 and 200"),
    ("ssda-lr-huge", "/ssda_run", dict(lr=10**9), r"Learning rate must be between"),
    ("ssda-seeds-long", "/ssda_run", dict(seeds=LONG), r"Seeds are whole numbers.*10,000 characters"),
    ("ssda-seeds-empty", "/ssda_run", dict(seeds=""), r"Give at least one seed"),
    ("ssda-editor-etc", "/ssda_run", dict(editor="/etc"), OUTSIDE),
    ("ssda-editor-not-a-model", "/ssda_run", dict(editor="@not_a_model", conditions=["adapted"]),
     r"not a diffusion model folder|not a DiffusionCLIP"),
    ("ssda-folder-etc", "/ssda_run", dict(task="folder", target_path="/etc"), OUTSIDE),
    ("ssda-reopen-etc", "/ssda_reopen", dict(folder="/etc"), r"is not a run folder inside"),
    ("ssda-reopen-dotdot", "/ssda_reopen", dict(folder="../../etc/passwd"), r"is not a run folder inside"),
    ("ssda-finetune-name-path", "/ssda_finetune", dict(name="../../etc/passwd"), r"is not a usable model name"),
    ("ssda-finetune-iterations-huge", "/ssda_finetune", dict(iterations=10**9), r"Iterations must be between 1 and 200"),
    ("ssda-finetune-iterations-text", "/ssda_finetune", dict(iterations="many"), r"Iterations must be a number"),
]


def resolve(value, files):
    from gradio_client import handle_file

    if not isinstance(value, str) or not value.startswith("@"):
        return value
    if value.startswith("@upload:"):
        return [handle_file(str(files["images"] / name)) for name in value[len("@upload:"):].split(",")]
    key, _, rest = value[1:].partition("/")
    return str(files[key] / rest) if rest else str(files[key])


@pytest.fixture(scope="module")
def client(request):
    """The whole app, served as app.main serves it (same launch settings), on a free port."""
    from gradio_client import Client

    from app import serve

    demo, url = serve(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    request.addfinalizer(demo.close)
    return Client(url, verbose=False)


def still_answers(client) -> None:
    grid, samples, *_ = client.predict(**DENOISE, api_name="/denoise_grid")
    assert Path(grid).exists() and Path(samples).exists()


def assert_clear(message: str, expect: str) -> None:
    assert "Traceback" not in message and "Unexpected error" not in message and 'File "' not in message, message
    assert len(message) < 1500, f"message of {len(message)} characters: {message[:300]}…"
    assert message.rstrip().endswith((".", ")", "'")) or len(message.split()) > 5, message
    assert re.search(expect, message, re.S), message


@pytest.mark.parametrize("case, api, change, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_message_and_the_server_keeps_answering(client, bad_files, case, api, change, expect):
    from gradio_client.exceptions import AppError

    kwargs = {**BASES[api], **{k: resolve(v, bad_files) for k, v in change.items()}}
    if expect is None or expect.startswith("OK:"):  # converted, or a note rather than an error: it must work
        result = client.predict(**kwargs, api_name=api)
        assert result is not None
        if expect:
            assert_clear(str(result), expect[3:])
    else:
        with pytest.raises(AppError) as info:
            client.predict(**kwargs, api_name=api)
        assert_clear(str(info.value), expect)
    still_answers(client)


def test_an_upload_over_the_size_limit_is_refused_by_the_server(client, bad_files):
    """Gradio refuses a file over max_file_size (413) before any handler sees it; the server keeps answering."""
    from gradio_client import handle_file

    from app import MAX_FILE_SIZE, launch_kwargs

    assert launch_kwargs()["max_file_size"] == MAX_FILE_SIZE == "20mb" and launch_kwargs()["show_error"] is False
    huge = bad_files["root"] / "huge.png"
    with huge.open("wb") as f:
        f.truncate(21 * 1024 * 1024)
    with pytest.raises(Exception, match=r"(?i)413|too large|exceeds|maximum"):
        client.predict(**{**EDIT, "files": [handle_file(str(huge))]}, api_name="/edit_run")
    still_answers(client)
