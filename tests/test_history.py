"""Run export (versions, metrics, how to reproduce, one zip) and the History tab: list, reopen, compare past runs.

Fake runs are made with lab.runs directly (seconds, no model); every test has its own runs folder (conftest)."""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from lab.errors import Cancelled
from lab.history import compare_records, open_run, run_rows
from lab.runs import bundle_run, export_files, flatten, list_runs, new_run, recorded


def _figure(title: str = "loss"):
    from lab.viz.plots import line_figure

    return line_figure([1, 2, 3], {"loss": [3.0, 2.0, 1.5]}, title, "step", "loss")


def _fake_run(kind: str, config: dict, metrics: dict, command: str = "", size: int = 32):
    """A finished run with a PNG grid, a CSV table and a plotly figure saved as HTML + JSON (no browser needed)."""
    from lab.viz.export import save_figure, write_csv

    with recorded(kind, config, command=command) as run:
        Image.new("L", (size, size), 128).save(run.add("grid.png"))
        write_csv(run.add("table.csv"), [{"a": 1, "b": 2}])
        for path in save_figure(_figure(kind), run.path("curve"), formats=("html", "json")):
            run.add(path.name)
        run.log_metrics(**metrics)
    return run


def test_a_finished_run_has_versions_metrics_and_reproduce_and_one_zip_holds_it_all(tiny_ddpm):
    command = f"python -m lab sample --model {tiny_ddpm} --steps 8"
    run = _fake_run("denoise", {"model": str(tiny_ddpm), "steps": 8, "nested": {"seed": 0}},
                    {"fid": 12.5, "per_class": {"0": 0.9, "1": 0.8}}, command=command)
    versions = json.loads((run.dir / "versions.json").read_text())
    assert versions["libraries"]["torch"] and versions["libraries"]["python"] and "lab" in versions["libraries"]
    [checkpoint] = versions["checkpoints"]
    weights = next(tiny_ddpm.rglob("*.safetensors"))
    assert checkpoint["name"] == tiny_ddpm.name and checkpoint["path"] == str(tiny_ddpm.resolve())
    assert checkpoint["sha256"][str(weights.relative_to(tiny_ddpm))] == \
        hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    metrics_csv = (run.dir / "metrics.csv").read_text().splitlines()
    assert metrics_csv[0] == "metric,value" and "fid,12.5" in metrics_csv and "per_class.1,0.8" in metrics_csv
    assert json.loads((run.dir / "metrics.json").read_text())["fid"] == 12.5
    assert command in (run.dir / "REPRODUCE.md").read_text()

    bundle = bundle_run(run.dir)
    assert bundle.parent == run.dir.parent and bundle.suffix == ".zip"
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        assert {"run.json", "metrics.csv", "metrics.json", "versions.json", "REPRODUCE.md", "grid.png", "table.csv",
                "curve.html", "curve.json"} <= names
        record = json.loads(zf.read("run.json"))
        assert record["config"]["nested"] == {"seed": 0} and record["command"] == command
        assert command in zf.read("REPRODUCE.md").decode()
        assert not any(n.endswith(".zip") for n in names)
    assert bundle_run(run.dir) == bundle  # reused while nothing changed


def test_a_run_without_a_cli_says_so_and_a_clashing_metrics_csv_is_kept():
    with recorded("discovery", {"model": "not-a-model"}) as run:
        (run.add("metrics.csv")).write_text("fid,copies\n1.0,0.1\n")     # the experiment's own table
        run.log_metrics(acceptance=0.5)
    assert "no CLI equivalent" in (run.dir / "REPRODUCE.md").read_text()
    assert (run.dir / "metrics.csv").read_text() == "fid,copies\n1.0,0.1\n"
    assert "acceptance,0.5" in (run.dir / "run_metrics.csv").read_text()
    assert json.loads((run.dir / "versions.json").read_text())["checkpoints"] == []


def test_cancelled_failed_and_crashed_runs_are_listed_with_their_status_and_can_be_bundled():
    with pytest.raises(Cancelled):
        with recorded("denoise", {"steps": 1000}, command="python -m lab sample --steps 1000") as run:
            run.log_metrics(done=3)
            raise Cancelled("Stopped by the user.")
    cancelled = run
    with pytest.raises(ValueError):
        with recorded("edit", {"t0": 400}) as failed:
            raise ValueError("the GPU caught fire")
    crashed = new_run("dann", {"epochs": 5}, command="python -m lab dann --epochs 5")  # the process died: no finish

    statuses = {r["id"]: r["status"] for r in run_rows()}
    assert statuses == {cancelled.dir.name: "cancelled", failed.dir.name: "failed", crashed.dir.name: "running"}
    assert [r["id"] for r in run_rows("edit")] == [failed.dir.name]
    assert "done = 3" in next(r["metrics"] for r in run_rows() if r["status"] == "cancelled")
    assert "the GPU caught fire" in (failed.dir / "REPRODUCE.md").read_text()
    assert (cancelled.dir / "versions.json").exists() and not (crashed.dir / "versions.json").exists()
    with zipfile.ZipFile(bundle_run(crashed.dir)) as zf:  # the missing files are written for the bundle
        assert {"run.json", "versions.json", "REPRODUCE.md", "metrics.csv"} <= set(zf.namelist())
        assert "python -m lab dann --epochs 5" in zf.read("REPRODUCE.md").decode()


def test_flatten_and_compare_records():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": [{"e": 1}]}) == {"a.b": 1, "a.c": "1, 2", "d.0.e": 1}
    a = {"kind": "denoise", "status": "finished", "config": {"steps": 10, "seed": 0}, "metrics": {"fid": 3.0}}
    b = {"kind": "denoise", "status": "finished", "config": {"steps": 50, "seed": 0, "eta": 0.5}, "metrics": {}}
    rows = {r["key"]: r for r in compare_records(a, b)}
    assert rows["config.steps"] == {"key": "config.steps", "A": 10, "B": 50, "differs": True}
    assert rows["config.seed"]["differs"] is False and rows["kind"]["differs"] is False
    assert rows["config.eta"]["A"] == "" and rows["config.eta"]["differs"] is True
    assert rows["metrics.fid"]["B"] == "" and rows["metrics.fid"]["differs"] is True


def test_export_without_a_browser_still_gives_html_and_csv(monkeypatch):
    import lab.viz.export

    monkeypatch.setattr(lab.viz.export, "static_export_available", lambda: False)
    with recorded("conditional-sweep", {"scales": [0, 1]}) as run:
        lab.viz.export.write_csv(run.add("sweep.csv"), [{"scale": 0, "accuracy": 0.1}])
    files = export_files(run.dir, {"sweep": _figure()})
    names = [f.name for f in files]
    assert {"sweep.html", "sweep.csv", "metrics.csv", "run.json"} <= set(names) and names[-1].endswith(".zip")
    assert not any(n.endswith((".png", ".svg", ".pdf")) for n in names)
    assert (run.dir / "sweep.json").exists() and "sweep.json" not in names  # the figure's JSON is for History


@pytest.mark.skipif(not __import__("lab.viz.export", fromlist=["x"]).static_export_available(),
                    reason="no Chrome/Chromium for kaleido")
def test_static_figures_are_written_in_one_browser_session(tmp_path):
    from lab.viz.export import save_figure

    written = save_figure(_figure(), tmp_path / "fig")
    assert [p.suffix for p in written] == [".html", ".png", ".svg", ".pdf", ".json"]
    assert Image.open(tmp_path / "fig.png").width > 600  # scale 2
    assert (tmp_path / "fig.svg").read_text().lstrip().startswith("<svg")
    assert (tmp_path / "fig.pdf").read_bytes()[:4] == b"%PDF"


def test_open_run_finds_images_figures_and_files():
    run = _fake_run("conditional", {"method": "cfg"}, {"accuracy": 0.9}, command="python -m lab conditional")
    saved = open_run(run.dir)
    assert [p.name for p in saved.images] == ["grid.png"] and [f.name for f in saved.figures] == ["curve.json"]
    assert saved.figure().layout.title.text == "conditional"
    assert {"grid.png", "table.csv", "curve.html", "run.json"} <= {f.name for f in saved.files}
    assert "python -m lab conditional" in saved.summary()


@pytest.fixture(scope="module")
def client(request):
    from conftest import serve_tab

    from lab.ui import history

    return serve_tab(history.build, request)


def test_history_tab_lists_opens_and_compares_runs(client):
    a = _fake_run("denoise", {"steps": 10, "seed": 0}, {"seconds": 1.5}, command="python -m lab sample --steps 10",
                  size=32)
    b = _fake_run("denoise", {"steps": 50, "seed": 0}, {"seconds": 4.0}, command="python -m lab sample --steps 50",
                  size=48)
    with pytest.raises(Cancelled):
        with recorded("edit", {"t0": 400}):
            raise Cancelled("stopped")

    table, *_ = client.predict("all", api_name="/history_list")
    rows = [dict(zip(table["headers"], r)) for r in table["data"]]
    assert {r["id"]: r["status"] for r in rows} == {a.dir.name: "finished", b.dir.name: "finished",
                                                   next(r["id"] for r in rows if r["kind"] == "edit"): "cancelled"}
    table, *_ = client.predict("denoise", api_name="/history_list")
    assert {r[0] for r in table["data"]} == {a.dir.name, b.dir.name}

    summary, gallery, figure, plot, config, metrics, files = client.predict(a.dir.name, api_name="/history_open")
    assert a.dir.name in summary and "python -m lab sample --steps 10" in summary
    assert len(gallery) == 1 and json.loads(plot["plot"])["data"]
    assert (figure["value"] if isinstance(figure, dict) else figure) == "curve"  # the figure chooser
    assert config == {"steps": 10, "seed": 0} and metrics == {"seconds": 1.5}
    names = {Path(f).name for f in files}
    assert {"grid.png", "table.csv", "curve.html", "versions.json"} <= names
    with zipfile.ZipFile(next(f for f in files if f.endswith(".zip"))) as zf:
        assert "REPRODUCE.md" in zf.namelist() and "grid.png" in zf.namelist()

    table, image_a, image_b, text = client.predict(a.dir.name, str(b.dir), api_name="/history_compare")
    rows = {r[0]: r for r in table["data"]}
    assert rows["config.steps"][1:] == [10, 50, True] and rows["config.seed"][3] is False
    assert rows["metrics.seconds"][1:] == [1.5, 4.0, True]
    assert Image.open(image_a).size == (32, 32) and Image.open(image_b).size == (48, 48)
    assert "differ" in text


def test_history_tab_refuses_paths_outside_the_runs_folder(client, tmp_path):
    root = Path(os.environ["LAB_RUNS_DIR"])
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for bad in ("/etc", str(outside), "../" + outside.name, ""):
        with pytest.raises(Exception, match="not a run folder inside|Start a run"):
            client.predict(bad, api_name="/history_open")
    with pytest.raises(Exception, match="not a run folder inside"):
        client.predict("/etc", "/tmp", api_name="/history_compare")
    (root / "empty").mkdir()
    with pytest.raises(Exception, match="no readable run.json"):
        client.predict("empty", api_name="/history_open")
    assert list_runs() == []


def test_a_stopped_job_answers_with_after_which_step_and_its_run_folder_never_an_error():
    """Stop is no failure: the handler returns its "stopped" outputs (here the text and the folder), the run record
    says where it stopped, and History's summary repeats it."""
    from lab.ui.common import JobToken, guarded, reporter

    token = JobToken()
    report = reporter(lambda *args, **kwargs: None, token)
    made = {}

    @guarded(stopped=lambda text, folder: (text, folder))
    def handler():
        with recorded("denoise", {"steps": 10}) as run:
            made["run"] = run
            report(3, 10, "Sampling 4 images")
            token.cancel()
            report(4, 10, "Sampling 4 images")
        return "finished"

    text, folder = handler()
    run = made["run"]
    assert text.startswith("**Stopped after step 3 of 10 (Sampling 4 images).**") and folder == str(run.dir)
    record = json.loads((run.dir / "run.json").read_text())
    assert record["status"] == "cancelled" and record["stopped"] == "Stopped after step 3 of 10 (Sampling 4 images)."
    assert "Stopped after step 3 of 10" in open_run(run.dir).summary()

    @guarded
    def plain():
        token.cancel()
        report(1, 2, "x")

    import gradio as gr

    assert plain() == gr.skip()  # no "stopped" outputs given: every output keeps what it shows


def test_tables_are_rounded_for_reading_with_the_key_columns_first():
    import pandas as pd

    from lab.ui.display import rounded, table_of

    frame = table_of([{"b": 0.800000011920929, "a": 0.014218144118785858, "key": "x", "n": 10, "gone": 1.0},
                      {"b": float("nan"), "a": 1367.4219, "key": "y", "n": 20, "gone": 2.0}],
                     first=["key", "a"], drop=["gone"])
    assert list(frame.columns) == ["key", "a", "b", "n"]
    assert frame["b"].tolist() == [0.8, None] and frame["a"].tolist() == [0.01422, 1367.0]
    assert frame["n"].tolist() == [10, 20]  # whole numbers stay as they are
    assert rounded(True) is True and rounded("0.123456") == "0.123456" and rounded(35.28764) == 35.29
    assert isinstance(table_of(pd.DataFrame({"x": [1.23456]})), pd.DataFrame)
