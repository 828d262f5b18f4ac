"""The Denoising-steps tab through gradio_client (tiny untrained models: fast, the pictures are noise),
and the CLI commands that call the same engine."""
import json
import zipfile
from pathlib import Path

import pytest
from conftest import needs_mnist
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
    assert Image.open(download).size == image.size  # the PNG download is the full-resolution grid
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
    table, text, export = client.predict(model=str(tiny_ddpm), **GRID, fid_n=20, features="classifier", floor=True,
                                         api_name="/denoise_quality")
    assert {"quality.csv", "quality.json"} <= {Path(f).name for f in export} and export[-1].endswith(".zip")
    row = dict(zip(table["headers"], table["data"][0]))
    assert row["n"] == 20 and "FID (classifier features)" in row and row["real-vs-real floor"] is not None
    assert "n = 20" in text and "classifier-mnist" in text
    with pytest.raises(Exception, match="must be between 10 and 10000, not 5"):
        client.predict(model=str(tiny_ddpm), **GRID, fid_n=5, features="classifier", floor=True,
                       api_name="/denoise_quality")


def test_sweep_gives_one_grid_per_step_count(client, tiny_ddpm):
    gallery, table, plot, export = client.predict(model=str(tiny_ddpm), **GRID, step_counts="2, 4", metric_images=0,
                                                  api_name="/denoise_sweep")
    assert len(gallery) == 2 and [r[0] for r in table["data"]] == [2, 4]
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


def test_stop_cancels_a_running_job_and_its_run_record_says_so(client, tiny_ddpm):
    import os
    import time
    from pathlib import Path

    job = client.submit(model=str(tiny_ddpm), **{**GRID, "sampler": "ddpm", "steps": 1000, "num_images": 16},
                        api_name="/denoise_grid")
    deadline = time.time() + 60
    while not job.status().progress_data and time.time() < deadline:  # wait until it is sampling
        time.sleep(0.2)
    client.predict(api_name="/denoise_stop")
    with pytest.raises(Exception, match="Stopped by the user"):
        job.result(timeout=60)
    runs = sorted(Path(os.environ["LAB_RUNS_DIR"]).glob("*-denoise/run.json"))
    assert json.loads(runs[-1].read_text())["status"] == "cancelled"
