"""The recipe reaches the optimiser and the loss: a training run replayed by hand, and the ``lr`` column checked.

The reference is written out here, not taken from the trainer: SGD with momentum and L2 weight decay as defined by
Sutskever et al. (2013) and used by the paper (section 5.1): ``d = g + wd * w``, ``v = mu * v + d`` (``v = d`` on
the first step), ``w = w - lr * v``; label-smoothed cross-entropy (Szegedy et al. 2016, section 7) is
``-(1 - eps) * log p_y - (eps / K) * sum_k log p_k``; and the learning-rate schedules as the config's docstrings
state them (step: /10 at 50% and 75% of the epochs; cosine: ``0.5 * (1 + cos(pi * t / T))``; linear warmup
``(t + 1) / W``).
"""

from __future__ import annotations

import csv
import math

import pytest
import torch

import senet
from senet.data import load_dataset
from senet.models import create_model
from senet.train import train

# 16 training images and a batch of 16: one optimiser step per epoch, on the whole training set.
DATA = "synthetic:classes=4,size=8,train=16,val=8"
MODEL_KWARGS = {"num_classes": 4, "in_chans": 1, "image_size": 8}


def _lr_column(out) -> list[float]:
    with open(out / "metrics.csv") as f:
        return [float(row["lr"]) for row in csv.DictReader(f)]


def _smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    log_p = torch.log_softmax(logits, dim=1)
    nll = -log_p.gather(1, labels[:, None]).squeeze(1)
    uniform = -log_p.mean(dim=1)
    return ((1 - eps) * nll + eps * uniform).mean()


def _replay(lrs, *, momentum, weight_decay, label_smoothing, seed=0):
    """Initial weights as the trainer draws them (seeded, then built), then one hand-written SGD step per lr."""
    torch.manual_seed(seed)
    model = create_model("notebook_simple", **MODEL_KWARGS).train()
    bundle = load_dataset(DATA, augment=False)
    images = torch.stack([bundle.train[i][0] for i in range(len(bundle.train))])
    labels = torch.tensor([bundle.train[i][1] for i in range(len(bundle.train))])
    params = list(model.parameters())
    velocity = [None] * len(params)
    first_loss = None
    for lr in lrs:
        loss = _smoothed_cross_entropy(model(images), labels, label_smoothing)
        first_loss = float(loss.detach()) if first_loss is None else first_loss
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                d = g + weight_decay * p
                velocity[i] = d.clone() if velocity[i] is None else momentum * velocity[i] + d
                p -= lr * velocity[i]
    return model, first_loss


RECIPE = {"model": "notebook_simple", "data": DATA, "augment": False, "epochs": 4, "batch_size": 16, "lr": 0.2,
          "momentum": 0.8, "weight_decay": 0.05, "label_smoothing": 0.3, "schedule": "step", "progress": False}


@pytest.fixture(scope="module")
def step_run(tmp_path_factory):
    return train({**RECIPE, "out": str(tmp_path_factory.mktemp("wiring") / "run")})


def test_lr_column_follows_the_step_schedule(step_run):
    """4 epochs: /10 after 50% (epoch 2) and again after 75% (epoch 3) - He et al.'s CIFAR schedule."""
    assert _lr_column(step_run.out) == pytest.approx([0.2, 0.2, 0.02, 0.002], rel=1e-9)


def test_first_loss_is_the_label_smoothed_cross_entropy(step_run):
    _, first_loss = _replay([0.2], momentum=0.8, weight_decay=0.05, label_smoothing=0.3)
    # one step per epoch: epoch 1's train loss is the loss of the initial weights
    assert step_run.history[0]["train_loss"] == pytest.approx(first_loss, rel=1e-5)
    _, plain = _replay([0.2], momentum=0.8, weight_decay=0.05, label_smoothing=0.0)
    assert abs(plain - first_loss) > 1e-3  # the smoothing term is not negligible here


def test_trained_weights_equal_four_hand_written_sgd_steps(step_run):
    """Momentum, weight decay, label smoothing and each step's lr all change the result by far more than the
    tolerance, so dropping or mis-wiring any one of them fails here."""
    ours = senet.load_model(step_run.out)
    reference, _ = _replay([0.2, 0.2, 0.02, 0.002], momentum=0.8, weight_decay=0.05, label_smoothing=0.3)
    want = reference.state_dict()
    for name, value in ours.state_dict().items():
        torch.testing.assert_close(value, want[name], rtol=1e-4, atol=1e-6, msg=name)
    # the same replay with any one knob changed lands elsewhere: the tolerance above can tell them apart
    for changed in ({"momentum": 0.0}, {"weight_decay": 0.0}, {"label_smoothing": 0.0}):
        args = {"momentum": 0.8, "weight_decay": 0.05, "label_smoothing": 0.3, **changed}
        other, _ = _replay([0.2, 0.2, 0.02, 0.002], **args)
        gap = max(float((other.state_dict()[k] - want[k]).abs().max()) for k in want)
        assert gap > 1e-3, changed
    flat, _ = _replay([0.2] * 4, momentum=0.8, weight_decay=0.05, label_smoothing=0.3)
    assert max(float((flat.state_dict()[k] - want[k]).abs().max()) for k in want) > 1e-3


def _cosine(t: int, total: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * t / total))


def test_lr_column_follows_cosine_with_linear_warmup(tmp_path):
    """2 steps per epoch, 4 epochs (T = 8), warmup 1.5 epochs = 3 steps; the column holds each epoch's last lr."""
    result = train({**RECIPE, "data": DATA.replace("train=16", "train=32"), "schedule": "cosine", "warmup": 1.5,
                    "out": str(tmp_path / "cos")})
    base, total, warm = 0.2, 8, 3
    expected = []
    for epoch in range(4):
        t = 2 * epoch + 1
        expected.append(base * _cosine(t, total) * ((t + 1) / warm if t < warm else 1.0))
    assert _lr_column(result.out) == pytest.approx(expected, rel=1e-9)
    assert expected[0] == pytest.approx(0.2 * _cosine(1, 8) * 2 / 3)  # warmup visible in the first row


def test_milestones_move_the_drop(tmp_path):
    result = train({**RECIPE, "milestones": [3], "momentum": 0.0, "out": str(tmp_path / "ms")})
    assert _lr_column(result.out) == pytest.approx([0.2, 0.2, 0.2, 0.02], rel=1e-9)
    ours = senet.load_model(result.out)
    reference, _ = _replay([0.2, 0.2, 0.2, 0.02], momentum=0.0, weight_decay=0.05, label_smoothing=0.3)
    for name, value in ours.state_dict().items():
        torch.testing.assert_close(value, reference.state_dict()[name], rtol=1e-4, atol=1e-6, msg=name)


def _replay_adamw(lrs, *, weight_decay, label_smoothing, betas=(0.9, 0.999), eps=1e-8):
    """AdamW (Loshchilov & Hutter 2019, Algorithm 2) with the usual defaults: decoupled decay ``w -= lr * wd * w``
    on weight matrices and kernels only (biases and norms carry none), then the bias-corrected Adam step."""
    torch.manual_seed(0)
    model = create_model("notebook_simple", **MODEL_KWARGS).train()
    bundle = load_dataset(DATA, augment=False)
    images = torch.stack([bundle.train[i][0] for i in range(len(bundle.train))])
    labels = torch.tensor([bundle.train[i][1] for i in range(len(bundle.train))])
    params = list(model.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t, lr in enumerate(lrs, start=1):
        grads = torch.autograd.grad(_smoothed_cross_entropy(model(images), labels, label_smoothing), params)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                if p.dim() >= 2:
                    p -= lr * weight_decay * p
                m[i] = betas[0] * m[i] + (1 - betas[0]) * g
                v[i] = betas[1] * v[i] + (1 - betas[1]) * g * g
                m_hat, v_hat = m[i] / (1 - betas[0] ** t), v[i] / (1 - betas[1] ** t)
                p -= lr * m_hat / (v_hat.sqrt() + eps)
    return model


def test_adamw_run_equals_the_algorithm_written_out(tmp_path):
    result = train({**RECIPE, "optimizer": "adamw", "lr": 0.01, "weight_decay": 0.5, "out": str(tmp_path / "adamw")})
    lrs = [0.01, 0.01, 0.001, 0.0001]
    assert _lr_column(result.out) == pytest.approx(lrs, rel=1e-9)
    betas = (RECIPE["momentum"], 0.999)  # --momentum is AdamW's beta_1 (0.8 here, not AdamW's default 0.9)
    want = _replay_adamw(lrs, weight_decay=0.5, label_smoothing=0.3, betas=betas).state_dict()
    for name, value in senet.load_model(result.out).state_dict().items():
        torch.testing.assert_close(value, want[name], rtol=1e-4, atol=1e-6, msg=name)
    no_decay = _replay_adamw(lrs, weight_decay=0.0, label_smoothing=0.3, betas=betas).state_dict()
    assert max(float((no_decay[k] - want[k]).abs().max()) for k in want) > 1e-4  # the decay is visible
