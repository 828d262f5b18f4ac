"""The History tab: every past run (app, CLI, cancelled or crashed), reopened from the runs folder or compared."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from lab.config import get_settings
from lab.history import compare_records, open_run, run_kinds, run_rows
from lab.runs import bundle_run
from lab.ui.common import export_box, guarded, run_folder
from lab.ui.display import figure_gallery, results_table, rounded_tree, table_of

COLUMNS = ["id", "kind", "status", "started", "seconds", "metrics"]
ALL = "all"


def _intro() -> str:
    return (f"Every run of every tab (and of `python -m lab`) is written to the runs folder "
            f"(`{get_settings().runs_dir}`, setting `LAB_RUNS_DIR`) as it goes: a crash, a stopped job or a closed "
            "browser loses nothing already computed. List them, reopen one (figures, configuration, metrics, "
            "files and the whole run as one zip) — click its row in the list, or choose it below — or compare two "
            "side by side.")


@guarded
def list_runs_table(kind=ALL):
    rows = run_rows(None if kind in (None, "", ALL) else str(kind))
    ids = [r["id"] for r in rows]
    return (_runs_table(rows), gr.Dropdown(choices=ids), gr.Dropdown(choices=ids), gr.Dropdown(choices=ids))


def _kinds():
    return gr.Dropdown(choices=[ALL, *run_kinds()])


def _runs_table(rows: list[dict]):
    return table_of(pd.DataFrame(rows, columns=COLUMNS)) if rows else pd.DataFrame(columns=[NO_RUNS])


NO_RUNS = "No runs yet: every run of the other tabs (or of python -m lab) appears here."


@guarded
def open_saved(run_id):
    saved = open_run(run_folder(run_id, "run (choose one in the list)"))
    gallery = [(str(p), p.stem) for p in saved.images]
    names = [f.stem for f in saved.figures]
    files = [str(f) for f in saved.files] + [str(bundle_run(saved.folder))]
    return (saved.summary(), gallery, gr.Dropdown(choices=names, value=names[0] if names else None),
            saved.figure(), rounded_tree(saved.record.get("config") or {}),
            rounded_tree(saved.record.get("metrics") or {}), files)


@guarded
def open_clicked(evt: gr.SelectData):
    """A click on a row of the runs table opens that run (and puts its id in the Run box)."""
    row = evt.row_value or []
    run_id = str(row[0]) if row else ""
    if not run_id or run_id == NO_RUNS:
        return (gr.skip(),) * 8
    return (gr.Dropdown(value=run_id), *open_saved(run_id))


@guarded
def show_figure(run_id, name):
    if not name:
        return None
    return open_run(run_folder(run_id, "run")).figure(str(name))


@guarded
def compare(run_a, run_b):
    a = open_run(run_folder(run_a, "run A"))
    b = open_run(run_folder(run_b, "run B"))
    rows = compare_records(a.record, b.record)
    differing = sum(r["differs"] for r in rows)
    text = (f"**A** {a.summary().splitlines()[0]}\n\n**B** {b.summary().splitlines()[0]}\n\n"
            f"{differing} of {len(rows)} settings and results differ.")
    first = (lambda s: str(s.images[0]) if s.images else None)
    table = table_of(pd.DataFrame(rows, columns=["key", "A", "B", "differs"]))
    return table, first(a), first(b), text


def build():
    gr.Markdown(_intro())
    rows = run_rows()
    ids = [r["id"] for r in rows]
    with gr.Row():
        kind = gr.Dropdown([ALL, *run_kinds()], value=ALL, label="Kind", allow_custom_value=True, scale=2)
        refresh = gr.Button("Refresh", scale=1)
    table = gr.Dataframe(_runs_table(rows), label="Past runs (newest first; click a row to open it)",
                         interactive=False, max_height=360, wrap=True, max_chars=90,
                         column_widths=["24%", "13%", "8%", "15%", "7%", "33%"])
    with gr.Accordion("Reopen a run", open=True):
        with gr.Row():
            run_id = gr.Dropdown(ids, value=None, label="Run (its id or folder)", allow_custom_value=True, scale=3)
            open_btn = gr.Button("Open", variant="primary", scale=1)
        summary = gr.Markdown()
        gallery = figure_gallery("Images of the run (grids, galleries, chart pictures)", columns=2)
        figure = gr.Dropdown([], label="Interactive figure", allow_custom_value=True)
        plot = gr.Plot(label="Figure")
        with gr.Row():
            config = gr.JSON(label="Configuration")
            metrics = gr.JSON(label="Metrics (rounded here; full precision in metrics.json)")
        files = export_box()
    with gr.Accordion("Compare two runs", open=True):
        with gr.Row():
            run_a = gr.Dropdown(ids, value=None, label="Run A", allow_custom_value=True)
            run_b = gr.Dropdown(ids, value=None, label="Run B", allow_custom_value=True)
            compare_btn = gr.Button("Compare")
        compare_text = gr.Markdown()
        compare_table = results_table("Configuration and metrics: A, B, differs",
                                      "Choose runs A and B and press Compare: their settings and results side by "
                                      "side appear here.", max_height=480, max_chars=80,
                                      column_widths=["26%", "32%", "32%", "10%"])
        with gr.Row():
            image_a = gr.Image(label="A: first figure", type="filepath", interactive=False)
            image_b = gr.Image(label="B: first figure", type="filepath", interactive=False)

    listing = [table, run_id, run_a, run_b]
    opened = [summary, gallery, figure, plot, config, metrics, files]
    events = [
        refresh.click(list_runs_table, kind, listing, api_name="history_list"),
        kind.change(list_runs_table, kind, listing, api_name=False),
        open_btn.click(open_saved, run_id, opened, api_name="history_open"),
        table.select(open_clicked, None, [run_id, *opened], api_name=False),
        figure.change(show_figure, [run_id, figure], plot, api_name="history_figure"),
        compare_btn.click(compare, [run_a, run_b], [compare_table, image_a, image_b, compare_text],
                          api_name="history_compare"),
    ]
    refresh.click(_kinds, None, kind, api_name=False)
    root = gr.context.Context.root_block
    if root is not None:  # fresh list on every page load (runs made since the app started)
        root.load(list_runs_table, kind, listing, api_name=False)
    return events
