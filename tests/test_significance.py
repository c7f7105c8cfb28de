"""The paired comparison of ``senet compare``: Student-t quantiles against printed tables, intervals by hand."""

from __future__ import annotations

import pytest

from senet.train.comparison import ModelSummary
from senet.train.report import write_report
from senet.train.significance import paired_difference, t_quantile


@pytest.mark.parametrize("p, df, printed", [
    (0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 4, 2.776), (0.975, 9, 2.262), (0.975, 29, 2.045),
    (0.95, 5, 2.015), (0.995, 10, 3.169), (0.975, 1000, 1.962),
])
def test_t_quantile_matches_the_printed_tables(p, df, printed):
    assert t_quantile(p, df) == pytest.approx(printed, abs=6e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-printed, abs=6e-4)


def test_a_consistent_gain_is_told_apart_with_the_hand_computed_interval():
    # d = [0.01, 0.02, 0.02]: mean 1/60, sd sqrt(1/3) / 100, se sd / sqrt(3) = 1/300; t(0.975, 2) = 4.3027
    diff = paired_difference([0.91, 0.92, 0.93], [0.90, 0.90, 0.91])
    half = 4.302653 / 300
    assert diff.n == 3 and diff.mean == pytest.approx(1 / 60)
    assert diff.low == pytest.approx(1 / 60 - half, abs=1e-6) and diff.high == pytest.approx(1 / 60 + half, abs=1e-6)
    assert diff.decided
    assert diff.verdict("se", "plain").startswith("se is better than plain by 1.67 points (95% CI +0.23 to +3.10")


def test_noise_around_zero_cannot_be_told_apart_and_a_loss_is_called_worse():
    undecided = paired_difference([0.905, 0.900, 0.910], [0.900, 0.905, 0.905])
    assert not undecided.decided and undecided.low < 0 < undecided.high
    assert "cannot tell se from plain" in undecided.verdict("se", "plain")
    worse = paired_difference([0.89, 0.88, 0.89, 0.885], [0.90, 0.90, 0.91, 0.90])
    assert worse.decided and worse.high < 0 and "se is worse than plain" in worse.verdict("se", "plain")


def test_one_seed_gives_no_interval_and_says_so():
    diff = paired_difference([0.9053], [0.9070])
    assert diff.low is None and diff.high is None and not diff.decided
    assert diff.verdict("se", "plain").startswith("one seed: no interval") and "-0.17 points" in diff.verdict("se", "plain")


@pytest.mark.parametrize("bad", [([0.9], [0.9, 0.8]), ([], [])])
def test_unpaired_results_are_refused(bad):
    with pytest.raises(ValueError, match="same number"):
        paired_difference(*bad)


def test_the_compare_report_states_the_verdict_per_model(tmp_path):
    def row(name, top1):
        return ModelSummary(model=name, params=100, se_params=0, macs=10, train_time=1.0, images_per_s=1.0,
                            top1=top1, top5=[1.0] * len(top1), runs=[str(tmp_path / name / f"seed{k}")
                                                                      for k in range(len(top1))],
                            val_top1=top1)
    summary = {"recipe": {"batch_size": 8, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "schedule": "step",
                          "warmup": 0, "label_smoothing": 0, "precision": "32", "seed": 0, "data": "synthetic"},
               "seeds": 3, "epochs": 1, "input_size": [1, 8, 8], "data": "synthetic"}
    report = write_report(tmp_path / "report.md", summary,
                          [row("plain", [0.90, 0.90, 0.91]), row("se", [0.91, 0.92, 0.93]),
                           row("eca", [0.905, 0.900, 0.910])]).read_text()
    assert "se is better than plain by 1.67 points" in report
    assert "the data cannot tell eca from plain" in report
