"""The Denoising-steps tab through gradio_client (tiny untrained models: fast, the pictures are noise),
and the CLI commands that call the same engine."""
import json
import os
import re
import zipfile
from pathlib import Path

import pytest
from conftest import needs_checkpoints, needs_mnist
from PIL import Image

from lab.cli import main
from lab.viz.export import static_export_available

GRID = dict(sampler="ddim", steps=8, eta=0.0, langevin_steps=2, langevin_eps=2e-5, langevin_denoise=True, num_images=4,
            snapshots=5, seed=0)


@pytest.fixture(scope="module")
def client(request):
    from conftest import serve_tab

    from lab.ui import denoise

    return serve_tab(denoise.build, request)


def test_grid_request_returns_rows_by_snapshots(client, tiny_ddpm):
    grid, samples, info, download, export = client.predict(model=str(tiny_ddpm), **GRID, api_name="/denoise_grid")
    image = Image.open(grid)
    # 4 rows × 5 columns of 28-px cells (plus make_grid padding and a label strip on top)
    assert image.width >= 5 * 28 and image.height >= 4 * 28 and image.width > image.height
    assert "4 images × 5 snapshots" in info and "t=" in info
    # the PNG downloads: print size (≥ 1200 px wide, whole-factor nearest upscale) and native size (28 px cells)
    printed, native = (Image.open(f) for f in download)
    assert printed.width >= 1200 and native.width == 5 * 30 + 2 and printed.width < 1200 + 5 * 30 + 2
    assert printed.width > image.width > native.width
    assert Image.open(samples).width >= 4 * 28
    names = {Path(f).name for f in export}
    assert {"grid.png", "samples.png", "metrics.csv", "run.json", "versions.json"} <= names
    bundle = zipfile.ZipFile(next(f for f in export if f.endswith(".zip")))
    assert {"grid.png", "run.json", "versions.json", "REPRODUCE.md"} <= set(bundle.namelist())
    assert "python -m lab sample --model" in bundle.read("REPRODUCE.md").decode()


def test_score_model_runs_annealed_langevin(client, tiny_score):
    grid, _, info, *_ = client.predict(model=str(tiny_score), **{**GRID, "sampler": "langevin"},
                                       api_name="/denoise_grid")
    assert "langevin" in info and "sigma=" in info and Image.open(grid).width > 0


@pytest.mark.parametrize("sampler", ["dpm", "dpm-sde"])
def test_score_model_runs_dpm_solver_through_the_tab(client, tiny_score, sampler):
    grid, _, info, *_ = client.predict(model=str(tiny_score), **{**GRID, "sampler": sampler, "steps": 4},
                                       api_name="/denoise_grid")
    assert f"({sampler};" in info and "sigma=" in info and Image.open(grid).width > 0


@needs_checkpoints("score-mnist")
def test_choosing_the_score_formulation_brings_its_cards_sampler(client):
    """The shipped score model's card recommends a sampler and its settings (SDE-DPM-Solver++, 50 steps): the tab
    sets the sampler, the steps and the corrector steps from it."""
    from lab.experiments.denoise.compare import sampler_settings
    from lab.experiments.denoise.config import DenoiseConfig
    from lab.models.store import read_info, resolve_model_path
    from lab.ui.denoise import FORMULATIONS

    card = sampler_settings(read_info(resolve_model_path("score-mnist")))
    assert card["sampler"] == "dpm-sde" and card["steps"] == 50
    score = next(label for label, kind in FORMULATIONS.items() if kind == "score")
    updates = client.predict(formulation=score, api_name="/_on_formulation")
    values = [u["value"] if isinstance(u, dict) else u for u in updates]
    assert values == ["score-mnist", "dpm-sde", 50, card.get("corrector_steps", DenoiseConfig.corrector_steps)]


@pytest.mark.parametrize("change, message", [
    # out-of-range numbers are refused by the sliders themselves (named by their label), before the engine runs
    (dict(num_images=0), "Number of images .* must be between 1 and 16, not 0"),
    (dict(steps=100_000), "Steps .* must be between 1 and 1000, not 100000"),
    (dict(eta=-1), "η .* must be between 0 and 1, not -1"),
    (dict(seed=-3), "Seed must be between 0"),
    (dict(sampler="langevin"), "annealed Langevin needs a score model"),
    (dict(model=""), "Choose a model first"),
])
def test_bad_inputs_are_clear_messages_and_the_server_keeps_answering(client, tiny_ddpm, change, message):
    with pytest.raises(Exception, match=message):
        client.predict(**{"model": str(tiny_ddpm), **GRID, **change}, api_name="/denoise_grid")
    grid, *_ = client.predict(model=str(tiny_ddpm), **GRID, api_name="/denoise_grid")
    assert Image.open(grid).width > 0


def test_a_folder_that_is_not_a_model(client, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(Exception, match="not a diffusion model folder"):
        client.predict(model=str(tmp_path), **GRID, api_name="/denoise_grid")
    with pytest.raises(Exception, match="No model folder"):
        client.predict(model=str(tmp_path / "nowhere"), **GRID, api_name="/denoise_grid")


@needs_mnist
def test_quality_reports_fid_with_n_floor_and_network(client, tiny_ddpm):
    table, text, export = client.predict(model=str(tiny_ddpm), **GRID, fid_n=20, features="classifier",
                                         floor=True, api_name="/denoise_quality")
    assert {"quality.csv", "quality.json"} <= {Path(f).name for f in export} and export[-1].endswith(".zip")
    row = dict(zip(table["headers"], table["data"][0]))
    assert row["n"] == 20 and "FID (classifier features)" in row and row["real-vs-real floor"] is not None
    assert table["headers"][0] == "FID (classifier features)" and "KID" not in table["headers"]  # KID: in the CSV
    assert "KID" in open(next(f for f in export if f.endswith("quality.csv"))).readline()
    assert "n = 20" in text and "classifier-mnist" in text
    assert "× the real-vs-real floor" in text and "n = 20 is small" in text  # the verdict and the small-n caveat
    with pytest.raises(Exception, match="must be between 10 and 10000, not 5"):
        client.predict(model=str(tiny_ddpm), **GRID, fid_n=5, features="classifier", floor=True,
                       api_name="/denoise_quality")


def test_sweep_gives_one_grid_per_step_count(client, tiny_ddpm):
    gallery, table, plot, text, export = client.predict(model=str(tiny_ddpm), **GRID, step_counts="2, 4",
                                                        metric_images=0, api_name="/denoise_sweep")
    assert len(gallery) == 2 and [r[0] for r in table["data"]] == [2, 4]
    assert "95 % interval" in table["headers"] and "n = 4" in text  # 4 images per T: the interval and the caveat
    names = {Path(f).name for f in export}
    assert {"grid_T2.png", "grid_T4.png", "sweep.csv", "sweep.html"} <= names
    if static_export_available():
        assert {"sweep.png", "sweep.svg"} <= names
    run = json.loads(Path(next(f for f in export if f.endswith("run.json"))).read_text())
    assert run["command"].endswith("--sweep 2,4")
    with pytest.raises(Exception, match="whole numbers separated by commas"):
        client.predict(model=str(tiny_ddpm), **GRID, step_counts="ten", metric_images=0, api_name="/denoise_sweep")


def test_cli_sample_writes_the_grid_and_reports_errors(tiny_ddpm, capsys):
    assert main(["sample", "--model", str(tiny_ddpm), "--steps", "2", "--n", "2", "--snapshots", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Image.open(out["grid"]).width >= 3 * 28
    assert main(["sample", "--model", str(tiny_ddpm), "--steps", "0"]) == 2
    assert "between 1 and 1000" in capsys.readouterr().err


def test_stop_cancels_a_running_job_says_after_which_step_and_is_no_error(client, tiny_ddpm):
    import os
    import time
    from pathlib import Path

    job = client.submit(model=str(tiny_ddpm), **{**GRID, "sampler": "ddpm", "steps": 1000, "num_images": 16},
                        api_name="/denoise_grid")
    deadline = time.time() + 60
    while not job.status().progress_data and time.time() < deadline:  # wait until it is sampling
        time.sleep(0.2)
    client.predict(api_name="/denoise_stop")
    grid, samples, info, download, export = job.result(timeout=60)  # an answer, not an error
    assert re.search(r"Stopped after step [\d,]+ of 1,000", info), info
    runs = sorted(Path(os.environ["LAB_RUNS_DIR"]).glob("*-denoise/run.json"))
    record = json.loads(runs[-1].read_text())
    assert record["status"] == "cancelled" and record["stopped"].startswith("Stopped after step")
    assert str(runs[-1].parent) in info and any(f.endswith("run.json") for f in export)


def test_a_long_quality_run_is_estimated_and_asked_first(client, tiny_ddpm, monkeypatch):
    """n = 10,000 at 1000 DDPM steps (hours for a real model on a CPU core; the tiny one is faster, so the limit is
    lowered): the answer is an estimate and a Run-anyway button, and nothing starts."""
    from lab.ui import estimate

    monkeypatch.setattr(estimate, "LONG_S", 1.0)
    table, text, export = client.predict(model=str(tiny_ddpm), **{**GRID, "sampler": "ddpm", "steps": 1000},
                                                 fid_n=10_000, features="classifier", floor=True,
                                                 api_name="/denoise_quality")
    assert "This run would take about" in text and "per network call" in text and "Lower n to" in text
    assert not isinstance(export, list)  # no files: skipped (the Run-anyway button is not part of the API answer)
    assert not list(Path(os.environ["LAB_RUNS_DIR"]).glob("*-denoise-quality"))  # nothing started


def test_the_estimate_is_the_measured_time_per_call_times_the_calls(tiny_ddpm):
    from lab.experiments.denoise.config import QualityConfig
    from lab.ui import estimate

    config = QualityConfig(model=str(tiny_ddpm), sampler="ddim", steps=50)
    seconds, how = estimate.sampling_estimate(config, 1000)
    per_call = next(v for k, v in estimate._PER_CALL.items() if k[0] == str(tiny_ddpm))
    assert seconds == pytest.approx(per_call * 50 * 1000 * 1.1) and "× 50 calls per image × 1,000 images" in how
    assert estimate.gate(seconds, how, confirmed=True) is None
    assert estimate.gate(estimate.LONG_S + 1, how, confirmed=False, per_unit=1.0).count("Lower n to 600") == 1
    assert estimate.duration(4000) == "about 1 h 07 min" and estimate.duration(300) == "about 5 min"


@pytest.mark.parametrize("labels, cell, scale", [
    (["sigma=2", "sigma=1.2", "sigma=0.719", "sigma=0.431", "sigma=0.258", "sigma=0.155", "sigma=0.0928",
      "sigma=0.0557", "sigma=0.0334", "denoised"], 28, 1),                       # the Langevin grid
    (["original", "reconstruction", "edited"], 28, 2),                            # the editing grid, upscaled ×2
    (["t=950", "t=700", "t=450", "t=200", "x0"], 28, 2),
    (["a very long column title indeed", "another long one", "x"], 28, 1),    # must turn or wrap, never overlap
])
def test_column_titles_never_overlap_and_small_cells_are_enlarged(labels, cell, scale):
    """Every dark pixel of the title strip lies inside its own column (none in the gaps between columns, none
    spilling into a neighbour), and 28-px cells are shown at least 56 px wide."""
    import torch

    from lab.viz.grids import MIN_CELL, label_columns, trajectory_grid

    snapshots = [torch.full((2, 1, cell, cell), 1.0) for _ in labels]   # white cells: only the titles are dark
    grid = trajectory_grid(snapshots, scale=scale)
    out = label_columns(grid, labels, cell=cell * scale).convert("L")
    factor = out.width // grid.width
    width, pad = cell * scale * factor, 2 * scale * factor
    assert width >= MIN_CELL and out.width == grid.width * factor
    header = out.crop((0, 0, out.width, out.height - grid.height * factor))
    ink = {x for x in range(header.width) for y in range(header.height) if header.getpixel((x, y)) < 128}
    assert ink, "no titles were drawn"
    for i in range(len(labels)):
        left = pad + i * (width + pad)
        assert any(left <= x < left + width for x in ink), f"title {i} missing"
    stray = [x for x in ink if (x - pad) % (width + pad) >= width]
    assert not stray, f"title ink in the gaps between columns at x = {sorted(stray)[:5]}"


def test_print_and_native_pngs_keep_pixels_crisp():
    import torch

    from lab.viz.grids import PRINT_WIDTH, print_ready, titled_trajectory

    torch.manual_seed(0)
    snapshots = [torch.rand(3, 1, 28, 28) * 2 - 1 for _ in range(10)]
    labels = [f"t={t}" for t in range(900, -1, -100)]
    printed, native = titled_trajectory(snapshots, labels), titled_trajectory(snapshots, labels, "native")
    assert printed.width >= PRINT_WIDTH and native.width == 10 * 30 + 2
    small = Image.new("L", (302, 100))
    small.putdata([(x * 7 + y * 3) % 256 for y in range(100) for x in range(302)])
    big = print_ready(small)
    assert big.width == 302 * 4 and big.height == 400          # a whole factor (ceil(1200 / 302) = 4)
    assert set(big.getdata()) == set(small.getdata())           # nearest neighbour: no new grey levels
