"""DANN on real digits: learning happens, the discriminator is fooled, results save and reload, the CLI
and the tab (through gradio_client) answer."""
import json
import zipfile
from pathlib import Path

import gradio as gr
import pytest
import torch
from conftest import needs_mnist, needs_usps

from lab.cli import main
from lab.experiments.dann.config import DANNConfig
from lab.experiments.dann.results import features_folder, load_result
from lab.experiments.dann.run import run_dann
from lab.runs import recorded

# small real subsets: every test here shares them (the loaded pair is cached in the process)
SMALL = dict(task="usps-mnist", source_limit=1500, target_limit=1500, test_limit=500, eval_limit=300,
             feature_points=200, batch_size=32)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, request):
    """One short real DANN comparison (none + stage1), shared by the tests below."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LAB_RUNS_DIR", str(tmp_path_factory.mktemp("dann-runs")))
    request.addfinalizer(mp.undo)
    config = DANNConfig(**SMALL, placements=["none", "stage1"], methods=["dann", "cdan+e"], epochs=4,
                        steps_per_epoch=25, lr=0.02)
    with recorded("dann", {}) as run:
        result = run_dann(config, record=run)
        result.save(run)
    return config, run, result


@pytest.fixture(scope="module")
def dimmed_mnist_pair():
    """An easy shift: MNIST against the same kind of digits at 60 % contrast (other images)."""
    from lab.data import load_dataset
    from lab.train.dann import DomainPair

    train = load_dataset("mnist", "train", size=32, channels=3, limit=1500)
    test = load_dataset("mnist", "test", size=32, channels=3, limit=300)

    def dim(x):
        return (x.float() * 0.6).to(torch.uint8)

    return DomainPair(train.images, train.labels, dim(train.images).roll(700, 0), test.images, test.labels,
                      dim(test.images), test.labels, [str(i) for i in range(10)])


@needs_mnist
def test_dann_pushes_the_discriminator_toward_chance_on_an_easy_shift(dimmed_mnist_pair):
    """The same discriminator at the classifier's output: without reversal (λ = 0) it learns to tell the
    domains apart; with the GRL (λ: 0 → 1, the paper's schedule) it ends near chance."""
    from lab.train.dann import DANNTrainConfig, train_dann

    def domain_acc(schedule, lam):
        config = DANNTrainConfig(epochs=4, steps_per_epoch=25, batch_size=32, lr=0.02, lambda_schedule=schedule,
                                 lambda_max=lam, eval_limit=300, device="cpu")
        return [e["domain_acc"] for e in train_dann(dimmed_mnist_pair, "stage3", config=config).history]

    plain, dann = domain_acc("constant", 0.0), domain_acc("dann", 1.0)
    assert plain[-1] > 0.85 and plain[-1] >= plain[0], plain        # it can separate the domains
    assert dann[-1] < 0.7 and dann[-1] < plain[-1] - 0.2, (dann, plain)  # reversal pushes it toward 0.5


@needs_mnist
@needs_usps
def test_short_dann_run_learns_and_round_trips(short_run):
    config, run, result = short_run
    rows = {r["row"]: r for r in result.rows()}
    assert list(rows) == ["source only", "DANN @ stage1", "CDAN+E @ stage1"]
    assert rows["source only"]["source_acc_mean"] > 0.8          # chance is 0.1
    assert 0 <= result.input_pad["pad"] <= 2 and result.input_pad["pad"] > 1.5  # raw USPS vs MNIST: far apart
    # PAD on what each discriminator sees: DANN's stage-1 view is the backbone output; CDAN+E's is f ⊗ g
    assert rows["DANN @ stage1"]["pad_seen_mean"] == rows["DANN @ stage1"]["pad_backbone_mean"]
    assert 0 <= rows["CDAN+E @ stage1"]["pad_seen_mean"] <= 2
    assert all(0 <= rows["source only"][f"pad_{k}_mean"] <= 2 for k in ("backbone", "hidden", "logits"))
    assert result.data["usps_renderings"]["source test"] in ("libsvm", "h5")
    for name in ("config.json", "table.csv", "runs.csv", "history.csv", "seed_reference.csv", "pad.html",
                 "curves_accuracy.html", "features/stage1-dann-seed0.pt", "beside_reference.csv"):
        assert (run.dir / name).is_file(), name
    # the run folder keeps the t-SNE inputs (500 points, 50 principal components); the full tensors lie beside it
    small = torch.load(run.dir / "features/stage1-dann-seed0.pt", weights_only=True)
    assert small["source"]["features"].shape == (200, 50)
    full = torch.load(features_folder(run.dir) / "stage1-cdan+e-seed0.pt", weights_only=True)
    assert full["source"]["features"].shape == (200, 1600) and full["source"]["seen"].shape == (200, 1024)
    assert full["source"]["features"].dtype == torch.float16
    again = load_result(run.dir)
    assert json.dumps(again.rows()) == json.dumps(result.rows()) and again.config == config  # NaN ≠ NaN
    fig = again.tsne_figure("DANN @ stage1 / seed 0", "class", points=100)
    assert len(fig.data) == 10 and sum(len(t.x) for t in fig.data) == 200
    assert json.loads((run.dir / "run.json").read_text())["status"] == "finished"


@needs_mnist
@needs_usps
def test_cli_runs_and_reports_bad_input(tmp_path, capsys):
    args = ["dann", "--task", "usps-mnist", "--placements", "stage3", "--epochs", "1", "--steps-per-epoch", "3",
            "--source-limit", "1500", "--target-limit", "1500", "--test-limit", "500", "--eval-limit", "300",
            "--batch-size", "32", "--no-tsne", "--threads", "2"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["best_placement"] == "stage3" and out["best_row"] == "DANN @ stage3" and "scratch" in out["weights"]
    assert out["verdict"] and list(out["table"][0])[0] == "target acc %"
    saved = Path(out["run"]) / "config.json"
    assert json.loads(saved.read_text())["placements"] == ["stage3"]
    assert main(["dann", "--config", str(saved), "--placements", "stage9"]) == 2
    assert "Unknown GRL placement 'stage9'" in capsys.readouterr().err
    assert main(["dann", "--task", "officehome", "--officehome", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@needs_mnist
@needs_usps
def test_tab_answers_through_gradio_client(launch_tab):
    from gradio_client.exceptions import AppError

    from lab.ui import dann

    with gr.Blocks() as demo:
        dann.build()
    client = launch_tab(demo)
    settings = ["usps-mnist", "", "Clipart", "Real_World", "lenet", "auto", ["none", "stage2"], ["dann", "cdan"], "0",
                1, 4, 32, "adam", 0.001, "constant", "dann", 1.0, True, 0.15, False, 1500, 1500, 300]
    info, table, reference, curves, pad, tsne, choice, folder, files, features = client.predict(
        *settings, api_name="/dann_compare")
    assert "from scratch" in info and "PAD between the raw test images" in info and "**Verdict:**" in info
    assert "USPS renderings" in info and "source test" in info
    assert table["headers"][0] == "target acc %" and [row[1] for row in table["data"]] == [
        "source only", "DANN @ stage2", "CDAN @ stage2"]
    assert all(len(row[0].split(" ± ")[0].split(".")[1]) == 2 for row in table["data"])  # rounded for display
    assert "target acc %: published" in reference.get("value", reference)["headers"] and pad is not None
    names = {Path(f).name for f in files}
    assert {"config.json", "table.csv", "history.csv"} <= names and any(n.endswith(".zip") for n in names)
    assert any(n.endswith(".png") for n in names) == ("curves_accuracy.png" in names)
    zipped = next(f for f in files if f.endswith(".zip"))
    inside = zipfile.ZipFile(zipped).namelist()
    assert "result.json" in inside and not any(n.endswith("-features.zip") for n in inside)
    # the feature tensors are offered on their own, outside the run's zip, which stays small
    assert len(features) == 1 and features[0].endswith("-features.zip")
    assert Path(zipped).stat().st_size < Path(features[0]).stat().st_size
    fig, files2 = client.predict(folder, "source only / seed 0", "class", api_name="/dann_tsne")
    assert fig is not None and any(Path(f).name.startswith("tsne_class") for f in files2)
    assert client.predict(folder, "domain", api_name="/dann_curves") is not None
    bad = list(settings)
    bad[6] = ["none", "layer2"]
    with pytest.raises(AppError, match="taps a ResNet"):
        client.predict(*bad, api_name="/dann_compare")
    bad = list(settings)
    bad[0], bad[1] = "officehome", "/nowhere/OfficeHome"
    with pytest.raises(AppError, match="outside the allowed folders"):  # the app opens no folder outside them
        client.predict(*bad, api_name="/dann_compare")
    with pytest.raises(AppError, match="not a run folder"):
        client.predict("/etc", "none / seed 0", "domain", api_name="/dann_tsne")
