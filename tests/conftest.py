"""Shared test settings: deterministic, small, CPU-only."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
