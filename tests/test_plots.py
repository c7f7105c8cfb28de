"""Charts a person reads at a glance: nothing cut off, small statistics on their own axes, fig. 7's band visible,
`senet train`'s own curves.png, and the excitation-by-depth chart for Keras models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import senet
from senet.analysis import analyze_excitations, write_charts
from senet.data import load_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def blank_border(png, pixels: int = 3) -> bool:
    """True when the outermost ``pixels`` rows and columns are background: nothing was drawn up to the edge."""
    import matplotlib.image

    image = matplotlib.image.imread(str(png))[..., :3]
    edges = np.concatenate([image[:pixels].reshape(-1, 3), image[-pixels:].reshape(-1, 3),
                            image[:, :pixels].reshape(-1, 3), image[:, -pixels:].reshape(-1, 3)])
    return bool((edges > 0.98).all())


@pytest.fixture(scope="module")
def one_block_report():
    torch.manual_seed(0)
    bundle = load_dataset("synthetic:classes=10,size=28,chans=1,train=10,val=100", augment=False)
    model = senet.create_model("notebook_simple").eval()
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    return analyze_excitations(model, bundle.val, num_classes=10, class_names=names, per_class=10)


@pytest.fixture
def figures(monkeypatch):
    """Keep every figure the analysis charts save, to inspect its axes."""
    from senet.analysis import plots
    from senet.plotting import save_figure

    kept = []

    def keep(fig, path, **kw):
        kept.append(fig)
        fig.canvas.draw()
        return save_figure(fig, path, **kw)

    monkeypatch.setattr(plots, "save_figure", keep)
    return kept


def test_one_block_model_charts_keep_titles_and_legends_whole(one_block_report, tmp_path):
    files = write_charts(one_block_report, tmp_path)
    for png in files.values():
        assert blank_border(png), f"{png.name}: something runs into the edge of the image"


def test_depth_chart_puts_small_statistics_on_their_own_axis(one_block_report, figures, tmp_path):
    from senet.analysis.plots import plot_depth

    plot_depth(one_block_report, tmp_path / "depth.png")
    spec, spread, sat = figures[0].axes[:3]
    metrics = one_block_report.metrics["se"]
    small = max(metrics["class_distance"], metrics["within_class_std"])
    assert small < 0.05  # a briefly trained (here: untrained) model: both near 0.01 or below
    assert spec.get_ylim() == pytest.approx((-0.03, 1.03)) and sat.get_ylim() == pytest.approx((-0.03, 1.03))
    assert small < spread.get_ylim()[1] <= 1.2 * small  # the spread axis is scaled to its own values
    assert [t.get_text() for t in spread.get_legend().get_texts()] == ["class-mean distance (RMS)",
                                                                       "within-class std"]


def test_fig7_band_fills_a_visible_part_of_its_axis(one_block_report, figures, tmp_path):
    from senet.analysis.plots import plot_within_class

    plot_within_class(one_block_report, tmp_path / "fig7.png")
    top, below = figures[0].axes[:2]
    st = one_block_report.stats["se"]
    k = one_block_report.classes[0]
    std = st.std()[k].numpy()
    lo, hi = top.get_ylim()
    assert float(np.median(2 * std)) / (hi - lo) > 0.01  # the band is at least ~1% of the axis, not a hairline
    assert below.get_ylabel() == "std" and below.get_ylim()[1] == pytest.approx(std.max() * 1.15, rel=1e-3)


def test_senet_train_writes_its_curves(tmp_path):
    from senet.train import train

    result = train({"model": "notebook_simple", "data": "synthetic:train=64,val=32", "epochs": 2, "batch_size": 32,
                    "progress": False, "out": str(tmp_path / "run")})
    png = result.out / "curves.png"
    assert png.is_file() and blank_border(png)


def test_keras_models_get_the_excitation_by_depth_chart(tmp_path):
    pytest.importorskip("keras")
    from senet.keras import excitation_model, notebook_simple
    from senet.keras.plots import keras_excitation_report, plot_keras_excitations

    model = notebook_simple()
    x = np.random.RandomState(0).rand(40, 28, 28, 1).astype("float32")
    y = np.arange(40) % 4
    report = keras_excitation_report(model, x, y)
    s = np.asarray(excitation_model(model, "se").predict(x, verbose=0))
    assert report.blocks == ["se"] and report.images_per_class == [10, 10, 10, 10]
    assert report.metrics["se"]["mean_excitation"] == pytest.approx(float(s.mean()), rel=1e-5)
    np.testing.assert_allclose(report.stats["se"].mean[1].numpy(), s[y == 1].mean(0), rtol=1e-5)
    files = plot_keras_excitations(model, x, y, tmp_path)
    assert sorted(p.name for p in files.values()) == ["depth.png", "fig6_class_means.png", "fig7_within_class.png"]
    assert all(blank_border(p) for p in files.values())
