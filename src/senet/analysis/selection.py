"""What to look at: the paper's choice of blocks and classes, and a class-balanced sample of a dataset."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from senet.analysis.surgery import se_stage_of

__all__ = ["balanced_indices", "dataset_labels", "paper_blocks", "resolve_blocks", "resolve_classes"]


def paper_blocks(names: Sequence[str], max_other: int = 6) -> list[str]:
    """Fig. 6's choice: the last block of every stage and all blocks of the last stage (SE-ResNet-50: SE_2_3,
    SE_3_4, SE_4_6, SE_5_1, SE_5_2, SE_5_3). For models whose blocks are not named by stage, up to ``max_other``
    blocks spread evenly over depth, always including the first and the last."""
    names = list(names)
    stages = [se_stage_of(n) for n in names]
    if not names or any(s is None for s in stages):
        if len(names) <= max_other:
            return names
        picks = sorted({round(i * (len(names) - 1) / (max_other - 1)) for i in range(max_other)})
        return [names[i] for i in picks]
    last = max(stages)
    chosen = []
    for i, (name, stage) in enumerate(zip(names, stages)):
        is_last_of_stage = i + 1 == len(names) or stages[i + 1] != stage
        if stage == last or is_last_of_stage:
            chosen.append(name)
    return chosen


def resolve_blocks(requested: str | Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Block names from ``"SE_2_3,SE_5_1"`` or a list, validated; None gives :func:`paper_blocks`."""
    if requested is None:
        return paper_blocks(available)
    items = [b.strip() for b in requested.split(",")] if isinstance(requested, str) else list(requested)
    items = [b for b in items if b]
    unknown = [b for b in items if b not in available]
    if unknown or not items:
        raise ValueError(f"unknown SE block(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(available)}")
    return list(dict.fromkeys(items))


def resolve_classes(
    requested: str | Sequence[str | int] | None, class_names: Sequence[str] | None, num_classes: int, default: int = 4
) -> list[int]:
    """Class indices from names or indices (``"Sneaker,0,Bag"``); None picks ``default`` classes spread evenly."""
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    if requested is None:
        count = min(default, num_classes)
        return sorted({round(i * (num_classes - 1) / max(count - 1, 1)) for i in range(count)})
    items = [c.strip() for c in requested.split(",")] if isinstance(requested, str) else list(requested)
    lowered = {n.lower(): i for i, n in enumerate(names)}
    out, bad = [], []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if text in names:
            out.append(names.index(text))
        elif text.lower() in lowered:
            out.append(lowered[text.lower()])
        elif text.isdigit() and int(text) < num_classes:
            out.append(int(text))
        else:
            bad.append(text)
    if bad or not out:
        listing = ", ".join(f"{i}={n}" for i, n in enumerate(names))
        raise ValueError(f"unknown class(es) {', '.join(map(str, bad)) or '(none given)'}; valid: {listing}")
    return list(dict.fromkeys(out))


def dataset_labels(dataset) -> torch.Tensor:
    """Every label of ``dataset`` as a 1-D int64 tensor, read from ``targets``/``labels`` when the dataset (or the
    dataset a ``Subset`` wraps) has them, otherwise by iterating (which loads the images)."""
    for attr in ("targets", "labels"):
        values = getattr(dataset, attr, None)
        if values is not None and not callable(values):
            try:
                return torch.as_tensor(values, dtype=torch.long).flatten()
            except (TypeError, ValueError):
                pass
    inner, indices = getattr(dataset, "dataset", None), getattr(dataset, "indices", None)
    if inner is not None and indices is not None:
        return dataset_labels(inner)[torch.as_tensor(list(indices), dtype=torch.long)]
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)


def balanced_indices(labels: torch.Tensor, per_class: int, num_classes: int) -> tuple[list[int], list[int]]:
    """The first ``per_class`` indices of every class (fewer where a class holds fewer), and the count per class."""
    if per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {per_class}")
    indices, used = [], []
    for k in range(num_classes):
        idx = torch.nonzero(labels == k).flatten()[:per_class].tolist()
        indices += idx
        used.append(len(idx))
    indices.sort()
    return indices, used
