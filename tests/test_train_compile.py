"""`--compile`: torch.compile'd training gives the same losses as eager and saves plain (unprefixed) weights.

Slow: TorchInductor compiles the training and evaluation graphs on the CPU (~30 s of CPU time).
"""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from senet.train import train

RECIPE = {"model": "notebook_simple", "data": "synthetic:train=32,val=16", "epochs": 1, "batch_size": 16,
          "lr": 0.05, "progress": False, "augment": False}


@pytest.mark.slow
def test_compiled_and_eager_training_agree(tmp_path):
    eager = train({**RECIPE, "out": str(tmp_path / "eager")})
    compiled = train({**RECIPE, "out": str(tmp_path / "compiled"), "compile": True})
    for key in ("train_loss", "val_loss", "val_top1"):
        assert compiled.final[key] == pytest.approx(eager.final[key], rel=1e-4, abs=1e-6)
    weights = load_file(str(tmp_path / "compiled" / "model.safetensors"))
    assert not any(k.startswith("_orig_mod") for k in weights)
