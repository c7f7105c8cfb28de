"""Checks whose expected values come from outside the code under test.

* Metrics: top-1, top-5, the summed cross-entropy, the confusion matrix and per-class recall of
  ``evaluate_loader`` / ``senet.train.evaluate`` against sums written out here over all logits at once (uneven
  batches, ties, fewer than 5 classes), instead of against another run of the same meter.
* The SE-ResNet unit against the unit written out as He et al.'s bottleneck with the paper's SE (Fig. 3: BN3 output scaled, then added to the identity),
  outputs and gradients, in training and evaluation mode; with a hook on the SE module the result must not change.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import senet
from senet.layers import make_attn_factory
from senet.models.blocks import Bottleneck
from senet.train import evaluate
from senet.train.loop import evaluate_loader


class FixedLogits(torch.nn.Module):
    """A 'model' whose logits for image i are row i of a table: the metrics are then known in advance."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.table[index.long().flatten()]


def _by_hand(logits: torch.Tensor, labels: torch.Tensor, k: int = 5) -> dict:
    n, classes = logits.shape
    order = [sorted(range(classes), key=lambda c, row=row: -float(row[c]))[:k] for row in logits]
    top1 = sum(int(order[i][0] == labels[i]) for i in range(n))
    top5 = sum(int(int(labels[i]) in order[i]) for i in range(n))
    log_p = logits - logits.exp().sum(1, keepdim=True).log()
    loss = -sum(float(log_p[i, labels[i]]) for i in range(n))
    confusion = [[0] * classes for _ in range(classes)]
    for i in range(n):
        confusion[int(labels[i])][order[i][0]] += 1
    per_class = [confusion[c][c] / sum(confusion[c]) if sum(confusion[c]) else None for c in range(classes)]
    return {"top1": top1 / n, "top5": top5 / n, "loss": loss / n, "confusion": confusion, "per_class": per_class}


@pytest.mark.parametrize("classes, batch", [(8, 7), (3, 4)])
def test_evaluate_loader_metrics_equal_the_definitions(classes, batch):
    gen = torch.Generator().manual_seed(classes)
    n = 23
    logits = torch.randn(n, classes, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    labels[labels == classes - 1] = 0  # one class without samples: its recall is None
    loader = DataLoader(TensorDataset(torch.arange(n), labels), batch_size=batch)  # 23 = uneven batches
    meter = evaluate_loader(FixedLogits(logits), loader, classes, device="cpu")
    want = _by_hand(logits, labels)
    summary = meter.summary()
    assert summary["count"] == n
    assert summary["top1"] == pytest.approx(want["top1"], abs=1e-12)
    assert summary["top5"] == pytest.approx(want["top5"], abs=1e-12)
    assert summary["loss"] == pytest.approx(want["loss"], rel=1e-6)
    assert meter.confusion.tolist() == want["confusion"]
    assert meter.per_class_accuracy() == pytest.approx(want["per_class"]) and want["per_class"][-1] is None
    if classes < 5:
        assert summary["top5"] == 1.0


def test_evaluate_reports_the_definitions_on_the_saved_model(tmp_path):
    data = "synthetic:classes=8,size=8,train=8,val=33"
    model = senet.create_model("notebook_simple", num_classes=8, image_size=8).eval()
    with torch.no_grad():
        model.fc.weight.mul_(20)  # spread the logits so the classes are not all tied
    senet.save_model(model, tmp_path / "m", extra={"dataset": {"name": data}})
    val = senet.data.load_dataset(data, augment=False).val
    images = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.tensor([val[i][1] for i in range(len(val))])
    with torch.no_grad():
        want = _by_hand(model(images), labels)
    result = evaluate(tmp_path / "m", batch_size=8, device="cpu", out=tmp_path / "e")
    assert result["count"] == 33
    assert result["top1"] == pytest.approx(want["top1"]) and result["top5"] == pytest.approx(want["top5"])
    assert result["loss"] == pytest.approx(want["loss"], rel=1e-5)
    assert result["confusion"] == want["confusion"]
    assert 0 < want["top1"] < want["top5"] < 1  # the figures are informative, not all 0 or 1


# ------------------------------------------------------------------------------------------------ SE bottleneck
def _bn(x, bn, training):
    return F.batch_norm(x, None if training else bn.running_mean, None if training else bn.running_var,
                        bn.weight, bn.bias, training, 0.0, bn.eps)


def _bottleneck_by_hand(unit: Bottleneck, x: torch.Tensor, training: bool) -> torch.Tensor:
    """1x1 -> BN -> ReLU -> 3x3 -> BN -> ReLU -> 1x1 -> BN = U; s = sigmoid(W2 relu(W1 mean(U))); relu(U * s + x)."""
    out = F.relu(_bn(F.conv2d(x, unit.conv1.weight), unit.bn1, training))
    out = F.relu(_bn(F.conv2d(out, unit.conv2.weight, padding=1), unit.bn2, training))
    u = _bn(F.conv2d(out, unit.conv3.weight), unit.bn3, training)
    se = unit.se
    z = F.relu(u.mean((2, 3)) @ se.fc1.weight.flatten(1).T + se.fc1.bias)
    s = torch.sigmoid(z @ se.fc2.weight.flatten(1).T + se.fc2.bias)
    return F.relu(u * s[:, :, None, None] + x)


@pytest.mark.parametrize("training", [True, False])
def test_se_bottleneck_equals_the_unit_written_out(training):
    torch.manual_seed(0)
    unit = Bottleneck(16, 4, attn_factory=make_attn_factory("se", reduction=4)).double()
    for m in unit.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, 0, 0.2)
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    unit.train(training)
    x = torch.randn(2, 16, 5, 5, dtype=torch.float64, requires_grad=True)
    params = [x, *unit.parameters()]
    want = _bottleneck_by_hand(unit, x, training)
    got = unit(x)
    torch.testing.assert_close(got, want)
    g = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(want, params, g)):
        torch.testing.assert_close(a, b)
    calls = []
    handle = unit.se.register_forward_hook(lambda m, i, o: calls.append(o.shape))
    try:
        torch.testing.assert_close(unit(x), want)  # a hook on SE must not change the unit's value
    finally:
        handle.remove()
    assert calls == [want.shape]
