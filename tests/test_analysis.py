"""ExcitationRecorder and the per-block statistics (senet.analysis.recorder / stats)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from senet.analysis import ClassStats, ExcitationRecorder, block_metrics, channel_gates
from senet.layers import ChannelSpatialSE, GatherExcite, SpatialSE, SqueezeExcite

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread

K = 4  # classes


class Unit(nn.Module):
    """A residual-style unit whose attention sits at ``.se`` (as in the ResNet family)."""

    def __init__(self, channels: int, attn: nn.Module | None = None):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.se = attn if attn is not None else SqueezeExcite(channels, 1)

    def forward(self, x):
        return x + self.se(self.conv(x))


class TwoPathNet(nn.Module):
    """layer1 sees only the class pattern (channels :K), layer2 only class-independent noise (channels K:).

    So SE_2_1/SE_2_2 are class-dependent by construction and SE_3_1 is class-agnostic by construction.
    """

    def __init__(self, noise_channels: int = 6):
        super().__init__()
        self.layer1 = nn.Sequential(Unit(K), Unit(K))
        self.layer2 = nn.Sequential(Unit(noise_channels))
        self.head = nn.Linear(K + noise_channels, K)

    def forward(self, x):
        a = self.layer1(x[:, :K]).mean((2, 3))
        b = self.layer2(x[:, K:]).mean((2, 3))
        return self.head(torch.cat([a, b], 1))


def make_data(n: int, noise_channels: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (n,), generator=g)
    x = torch.randn(n, K + noise_channels, 6, 6, generator=g)
    x[:, :K] *= 0.01  # the class pattern dominates the first K channels
    x[torch.arange(n), y] += 3.0
    return x, y


def record(model, x, y, batch_sizes=(64,), **kw):
    with ExcitationRecorder(model, num_classes=K, **kw) as rec:
        i, j = 0, 0
        while i < len(x):
            b = batch_sizes[j % len(batch_sizes)]
            rec.record(x[i:i + b], y[i:i + b])
            i, j = i + b, j + 1
    return rec


def test_names_follow_the_paper():
    assert list(channel_gates(TwoPathNet())) == ["SE_2_1", "SE_2_2", "SE_3_1"]


def test_class_specificity_near_one_for_class_driven_gates_and_near_zero_otherwise():
    x, y = make_data(800)
    metrics = record(TwoPathNet(), x, y).metrics()
    assert metrics["SE_2_1"]["class_specificity"] > 0.95
    assert metrics["SE_3_1"]["class_specificity"] < 0.05
    assert metrics["SE_2_1"]["class_distance"] > 10 * metrics["SE_3_1"]["class_distance"]
    assert metrics["SE_2_1"]["images"] == 800


def one_shot(values: torch.Tensor, labels: torch.Tensor):
    mean = torch.stack([values[labels == k].mean(0) for k in range(K)])
    var = torch.stack([values[labels == k].var(0) for k in range(K)])
    return mean, var


def test_streaming_equals_one_shot_over_uneven_batches():
    model = TwoPathNet()
    x, y = make_data(300)
    captured = []
    handle = model.layer2[0].se.gate.register_forward_hook(lambda m, i, o: captured.append(o.double().flatten(1)))
    rec = record(model, x, y, batch_sizes=(1, 7, 64, 13))
    handle.remove()
    values = torch.cat(captured)
    mean, var = one_shot(values, y)
    st = rec.stats()["SE_3_1"]
    torch.testing.assert_close(st.count, torch.bincount(y, minlength=K).double())
    torch.testing.assert_close(st.mean, mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(st.std() ** 2, var, atol=1e-6, rtol=0)


def test_merge_is_stable_for_values_with_a_large_offset():
    g = torch.Generator().manual_seed(0)
    values = 1e6 + 1e-3 * torch.randn(2000, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, K, (2000,), generator=g)
    acc = ClassStats.empty(K, 5)
    for chunk_v, chunk_y in zip(values.split(33), labels.split(33)):
        acc.merge_(ClassStats.from_batch(chunk_v, chunk_y, K))
    mean, var = one_shot(values, labels)
    torch.testing.assert_close(acc.mean, mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(acc.std() ** 2, var, rtol=1e-6, atol=0)


def test_state_size_does_not_depend_on_the_number_of_images():
    model = TwoPathNet()
    small = record(model, *make_data(40))
    large = record(model, *make_data(640))
    assert small.state_nbytes() == large.state_nbytes() > 0
    channels = 4 + 4 + 6
    assert large.state_nbytes() == 8 * (3 * K + 2 * K * channels)


def test_hooks_removed_on_exit_and_on_error_and_mode_restored():
    model = TwoPathNet().train()
    gates = list(channel_gates(model).values())
    with pytest.raises(RuntimeError, match="without labels"), ExcitationRecorder(model, num_classes=K):
        assert not model.training
        model(make_data(4)[0])
    assert all(not g._forward_hooks for g in gates)
    assert model.training


def test_labels_context_and_growing_class_count():
    model = TwoPathNet()
    x, _ = make_data(50)
    with ExcitationRecorder(model, blocks=["SE_3_1"]) as rec, torch.no_grad():
        with rec.labels(torch.zeros(20, dtype=torch.long)):
            model(x[:20])
        with rec.labels(torch.full((30,), 2)):
            model(x[20:])
    st = rec.stats()
    assert list(st) == ["SE_3_1"]
    assert st["SE_3_1"].count.tolist() == [20.0, 0.0, 30.0]


def test_bad_labels_rejected():
    model = TwoPathNet()
    x, _ = make_data(8)
    with ExcitationRecorder(model, num_classes=K) as rec:
        with pytest.raises(ValueError, match=r"\[0, 4\)"):
            rec.record(x, torch.full((8,), 4))
        with pytest.raises(ValueError, match="8 images"):
            rec.record(x, torch.zeros(3, dtype=torch.long))


def test_model_without_se_blocks_raises_value_error():
    with pytest.raises(ValueError, match="no SE blocks"):
        ExcitationRecorder(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    with pytest.raises(ValueError, match="no SE blocks"):
        ExcitationRecorder(nn.Sequential(SpatialSE(4)))  # spatial-only attention has no channel excitation


def test_unknown_block_lists_the_valid_ones():
    with pytest.raises(ValueError, match="SE_2_1, SE_2_2, SE_3_1"):
        ExcitationRecorder(TwoPathNet(), blocks=["SE_9_9"])


def test_low_precision_model_accumulates_in_float64():
    model = TwoPathNet().to(torch.bfloat16)
    x, y = make_data(64)
    st = record(model, x.to(torch.bfloat16), y).stats()["SE_2_1"]
    assert st.mean.dtype == torch.float64
    assert bool(((st.mean >= 0) & (st.mean <= 1)).all())


def test_variants_scse_and_spatial_maps():
    model = nn.Sequential(ChannelSpatialSE(4, 2), GatherExcite(4, extent=2), SqueezeExcite(4, 1, squeeze="none"))
    gates = channel_gates(model)
    assert gates["0"] is model[0].cse.gate
    x = torch.randn(10, 4, 6, 6)
    with ExcitationRecorder(model, num_classes=2) as rec:
        rec.record(x, torch.tensor([0, 1] * 5))
    st = rec.stats()
    assert {n: s.channels for n, s in st.items()} == {"0": 4, "1": 4, "2": 4}
    assert st["1"].count.tolist() == [5.0, 5.0]


def test_block_metrics_on_known_values():
    # class 0 always 1.0, class 1 always 0.0 on both channels: all variance is between classes.
    values = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    m = block_metrics(ClassStats.from_batch(values, torch.tensor([0, 0, 1, 1]), 2))
    assert m["class_specificity"] == pytest.approx(1.0)
    assert m["class_distance"] == pytest.approx(1.0)
    assert m["mean_excitation"] == pytest.approx(0.5)
    assert m["saturated_high"] == 0.0 and m["saturated_low"] == 0.0
    assert m["within_class_std"] == pytest.approx(0.0)
    # identical classes, saturated channel 0 -> specificity 0, half the channels above 0.9
    values = torch.tensor([[0.95, 0.2], [0.97, 0.4], [0.95, 0.2], [0.97, 0.4]], dtype=torch.float64)
    m = block_metrics(ClassStats.from_batch(values, torch.tensor([0, 0, 1, 1]), 2))
    assert m["class_specificity"] == pytest.approx(0.0, abs=1e-12)
    assert m["saturated_high"] == 0.5


def test_stats_are_a_snapshot():
    model = TwoPathNet()
    x, y = make_data(40)
    with ExcitationRecorder(model, num_classes=K) as rec:
        rec.record(x[:20], y[:20])
        first = rec.stats()["SE_2_1"].count.clone()
        snapshot = rec.stats()["SE_2_1"]
        rec.record(x[20:], y[20:])
    torch.testing.assert_close(snapshot.count, first)
    assert rec.stats()["SE_2_1"].total == 40
