"""The training loop on Lightning Fabric: plain PyTorch you can read top to bottom.

Fabric supplies the devices, the DDP wrapping, mixed precision, process launch, checkpoint saving and loading
(:mod:`senet.train.checkpoint`) and the loggers (:mod:`senet.train.loggers`); the loop itself - lr schedule,
forward, loss, backward, step, validation, checkpoints - is written out here. One process (CPU or one GPU) runs
``_run`` directly; ``devices * num_nodes > 1`` goes through ``fabric.launch``.

Reproducibility: a run is a function of its config and seed. The data order of epoch ``e`` comes from a
``DistributedSampler`` seeded with ``(seed, e)``; augmentation from the loaders' generators. Those generators and
every global RNG state, of every process, are saved with each epoch's checkpoint and restored on ``--resume``, so
with ``workers=0`` on CPU a resumed run ends bit-identical to an uninterrupted one (worker processes are persistent,
so with ``workers > 0`` a resumed run augments differently from the interrupted epoch on).
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler, Sampler

from senet.errors import ConfigError, SenetError
from senet.progress import progress as progress_bar
from senet.train import state as st
from senet.train.checkpoint import SafeCheckpointIO, load_checkpoint, restore_model_and_optimizer
from senet.train.config import TrainConfig
from senet.train.distributed import gather_rank_states, restore_rank_state, use_sync_batchnorm
from senet.train.epoch import train_one_epoch
from senet.train.epoch_files import EpochWriter
from senet.train.loggers import build_loggers, close_loggers
from senet.train.metrics import ClassificationMeter
from senet.train.optim import train_mode
from senet.train.precision import check_precision, fabric_precision
from senet.train.run_state import EpochResult, TrainProgress

__all__ = ["TrainResult", "evaluate_loader", "model_kwargs_for", "run_training"]


@dataclass
class TrainResult:
    """What a finished run returns (also readable later from its folder)."""

    out: Path
    model: str
    model_kwargs: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_top1: float = 0.0
    best_epoch: int = 0
    #: The test split's result for the selected model (``DIR/test.json``); None without a test split.
    test: dict[str, Any] | None = None

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    @property
    def train_time(self) -> float:
        """Seconds spent in all epochs (training and validation)."""
        return float(sum(r["epoch_time"] for r in self.history))

    @property
    def images_per_s(self) -> float:
        """Mean training throughput over the epochs."""
        return float(sum(r["images_per_s"] for r in self.history) / max(len(self.history), 1))


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` in order: each process validates its own share, nothing padded."""

    def __init__(self, length: int, rank: int, world: int) -> None:
        self.indices = range(rank, length, world)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def run_training(config: TrainConfig) -> TrainResult:
    """Set up Fabric from ``config`` (already validated and resolved) and train; see :func:`senet.train.train`."""
    from lightning_fabric import Fabric

    loggers = build_loggers(config)  # a missing optional package ends here, in one line
    try:
        fabric = Fabric(accelerator=config.accelerator, devices=config.devices, strategy=config.strategy,
                        num_nodes=config.num_nodes, precision=fabric_precision(config.precision),
                        plugins=[SafeCheckpointIO()], loggers=loggers)
    except (RuntimeError, ValueError, ImportError) as exc:  # --accelerator cuda without a GPU, unknown --strategy, tpu
        reason = " ".join(str(exc).split())
        raise SenetError(f"cannot set up accelerator={config.accelerator} strategy={config.strategy} "
                         f"devices={config.devices} precision={config.precision}: {reason}") from exc
    check_precision(fabric, config.precision, config.accelerator)  # what run.json records is what runs
    return fabric.launch(_run, config)


def model_kwargs_for(config: TrainConfig, bundle: Any) -> dict[str, Any]:
    """``model_args`` plus ``num_classes``/``in_chans`` (and ``image_size`` if the builder takes it) from the data."""
    from senet.models import get_model_builder

    params = inspect.signature(get_model_builder(config.model)).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = dict(config.model_args)
    for key, value in (("num_classes", bundle.num_classes), ("in_chans", bundle.in_chans)):
        if key in kwargs and kwargs[key] != value:
            raise ConfigError(f"model argument {key}={kwargs[key]} conflicts with dataset {config.data!r}, which has "
                              f"{key}={value}; drop it (senet train sets it from the data)")
        if key not in params and not takes_any:
            raise ConfigError(f"model {config.model!r} takes no {key} argument, so it cannot be fitted to the data")
        kwargs[key] = value
    size = bundle.image_size
    size = size[0] if isinstance(size, (tuple, list)) and len(set(size)) == 1 else size
    if "image_size" in params and "image_size" not in kwargs:
        kwargs["image_size"] = size
    return kwargs


def _check_out_dir(config: TrainConfig) -> None:
    """Refuse a folder that holds a run (unless resuming or overwriting), or a resume with nothing to resume."""
    out = config.out_dir
    if config.resume and not (out / st.RUN_FILE).exists():
        raise SenetError(f"nothing to resume in {out}: no {st.RUN_FILE} there (start without --resume)")
    if not config.resume and not config.overwrite and st.folder_holds_run(out):
        raise SenetError(f"{out} already holds a run: pass --resume to continue it or --overwrite to replace it")


def _claim_out_dir(config: TrainConfig) -> None:
    """Once the data and model are known to work: clear an overwritten run and write ``run.json``."""
    out = config.out_dir
    if config.resume:
        return
    if config.overwrite:
        st.remove_run_files(out)
    out.mkdir(parents=True, exist_ok=True)
    st.write_run_file(out, config.to_dict())


def _on_rank_zero(fabric: Any, fn, *args) -> Any:
    """Run ``fn`` on global rank 0, share its result (or its error message) with every process."""
    result, error, failure = None, None, None
    if fabric.is_global_zero:
        try:
            result = fn(*args)
        except (SenetError, OSError) as exc:  # OSError: the folder cannot be created or written
            error, failure = str(exc), exc
    error = fabric.broadcast(error, 0)
    if failure is not None:
        raise failure
    if error:
        raise SenetError(error)
    fabric.barrier()
    return result


def _load_data(fabric: Any, config: TrainConfig) -> Any:
    """The dataset bundle; with several processes rank 0 loads first, so a ``--download`` fetches the files once.

    A loading error on any process is caught inside ``rank_zero_first`` (so its barriers still meet) and rank 0's
    error is raised on every process.
    """
    from senet.data import load_dataset

    def load() -> Any:
        return load_dataset(config.data, data_dir=config.data_dir, download=config.download,
                            train_subset=config.train_subset, val_subset=config.val_subset, augment=config.augment,
                            seed=config.seed, val_split=config.val_split, test_subset=config.test_subset,
                            image_size=config.image_size, random_erasing=config.random_erasing)

    if fabric.world_size == 1:
        return load()
    bundle, error = None, None
    with fabric.rank_zero_first():
        try:
            bundle = load()
        except (SenetError, ValueError, OSError) as exc:
            error = str(exc)
    first_error = fabric.broadcast(error, 0)
    if error or first_error:
        raise SenetError(error or first_error)
    return bundle


def _check_batch_fits(config: TrainConfig, train_size: int, world: int) -> None:
    """Refuse a per-process batch larger than the per-process share of the training set (no full batch to drop_last)."""
    per_process_batch = config.batch_size // world
    share = math.ceil(train_size / world)  # what a DistributedSampler (no drop_last) gives each process
    if share < per_process_batch:
        where = "" if world == 1 else f" ({per_process_batch} per process vs {share} images per process)"
        raise ConfigError(f"batch_size {config.batch_size} is larger than the training set "
                          f"({train_size} images){where}; lower --batch-size")


def _run(fabric: Any, config: TrainConfig) -> TrainResult:
    """Hold the run folder for the whole run (rank 0), so a second run into the same folder is refused."""
    lock = _on_rank_zero(fabric, st.lock_run_folder, config.out_dir)
    try:
        return _train(fabric, config)
    finally:
        if lock is not None:
            lock.release()


def _train(fabric: Any, config: TrainConfig) -> TrainResult:
    out = config.out_dir
    _on_rank_zero(fabric, _check_out_dir, config)
    saved = load_checkpoint(fabric, out) if config.resume and (out / st.STATE_FILE).exists() else None
    if saved is not None:
        st.check_state_matches_run(saved, config.recipe(), out)
    bundle = _load_data(fabric, config)
    _check_batch_fits(config, len(bundle.train), fabric.world_size)  # before the run folder is claimed
    kwargs = model_kwargs_for(config, bundle)
    model, forward_model, optimizer, frozen_norms = _setup_model(fabric, config, kwargs, resuming=saved is not None)
    if saved is not None:  # after setup, so the optimizer's tensors land on the model's device
        restore_model_and_optimizer(fabric, out, model, optimizer)
    progress = TrainProgress.from_checkpoint(saved)
    _seed_process_rngs(fabric, config, saved, progress.epoch)

    train_sampler, train_loader, val_loader = _make_loaders(fabric, config, bundle)
    generators = {"train": train_loader.generator}  # they seed each epoch's augmentation
    if val_loader is not None:
        generators["val"] = val_loader.generator
    if saved is not None and fabric.global_rank == 0:
        for name, generator in generators.items():
            generator.set_state(saved["data_order"][name])
    if saved is not None:
        restore_rank_state(saved["data_order"].get("ranks"), fabric, generators)
    if val_loader is None:
        fabric.print("no validation split (val_split=0): best/ is not kept; the test split is evaluated once at "
                     "the end, on the final model")

    steps_per_epoch = len(train_loader)
    schedule = {"schedule": config.schedule, "total_steps": steps_per_epoch * config.epochs,
                "steps_per_epoch": steps_per_epoch, "milestones": config.step_milestones(),
                "warmup_steps": round(config.warmup * steps_per_epoch)}
    saved_info = {"dataset": {"name": bundle.name, "num_classes": bundle.num_classes, "in_chans": bundle.in_chans,
                              "image_size": bundle.image_size, "mean": _plain(bundle.mean), "std": _plain(bundle.std)},
                  "class_names": list(bundle.class_names), "train_config": config.to_dict()}
    writer = EpochWriter(fabric, config, model, optimizer, saved_info)

    for epoch in range(progress.epoch, config.epochs):
        epoch_start = time.perf_counter()
        train_sampler.set_epoch(epoch)
        bar = progress_bar(train_loader, desc=f"epoch {epoch + 1}/{config.epochs}",
                           enabled=config.progress and fabric.is_global_zero)
        train_mode(forward_model, list(frozen_norms))
        totals = train_one_epoch(fabric, forward_model, optimizer, bar, config, schedule, progress.step, epoch,
                                 last_good_epoch=progress.epoch)
        train_seconds = time.perf_counter() - epoch_start
        val = {"loss": None, "top1": None, "top5": None} if val_loader is None else evaluate_loader(
            forward_model, val_loader, bundle.num_classes, fabric=fabric, channels_last=config.channels_last).summary()
        result = EpochResult(epoch=epoch + 1, train_loss=totals.loss_sum / totals.seen,
                             train_acc=totals.correct / totals.seen, val_loss=val["loss"], val_top1=val["top1"],
                             val_top5=val["top5"], lr=totals.lr, epoch_time=time.perf_counter() - epoch_start,
                             images_per_s=totals.seen / train_seconds)
        _check_finite(result.as_row(), model, out, progress.epoch)
        improved = progress.record(result, totals.step)
        _print_epoch(fabric, config, result)
        ranks = gather_rank_states(fabric, generators)  # a collective: every process's RNG, for an exact resume
        writer.write(progress, improved, {**{name: g.get_state() for name, g in generators.items()}, "ranks": ranks})
    close_loggers(fabric)
    from senet.train.final_test import evaluate_test_once

    test = evaluate_test_once(fabric, model, forward_model, bundle, config, progress.best, progress.history)
    return TrainResult(out=out, model=config.model, model_kwargs=kwargs, history=progress.history,
                       best_top1=max(progress.best_top1, 0.0), best_epoch=progress.best_epoch, test=test)


def _seed_process_rngs(fabric: Any, config: TrainConfig, saved: dict | None, start_epoch: int) -> None:
    """Rank 0 continues its saved RNG states; the other ranks get distinct seeds, replaced by their own saved states
    (when the checkpoint has them) once the loaders exist."""
    if saved is not None and fabric.global_rank == 0:
        st.restore_rng(saved["rng"])
    elif saved is not None:
        st.seed_everything(config.seed + 1_000_003 * fabric.global_rank + start_epoch)
    elif fabric.global_rank > 0:
        st.seed_everything(config.seed + 1_000_003 * fabric.global_rank)  # distinct augmentations per process


def _print_epoch(fabric: Any, config: TrainConfig, result: EpochResult) -> None:
    shown_val = "no validation" if result.val_top1 is None else (
        f"val loss {result.val_loss:.4f} top-1 {result.val_top1:.4f} top-5 {result.val_top5:.4f}")
    fabric.print(f"epoch {result.epoch}/{config.epochs}: train loss {result.train_loss:.4f} "
                 f"acc {result.train_acc:.4f} | {shown_val} | lr {result.lr:.4g} | {result.images_per_s:.0f} img/s, "
                 f"{result.epoch_time:.1f} s")


def _setup_model(fabric: Any, config: TrainConfig, kwargs: dict[str, Any], resuming: bool):
    """Build the model (same initial weights on every process; from ``init_from`` unless resuming), freeze what
    ``freeze`` says, claim the run folder, set up the optimizer and Fabric.

    Returns (the plain model for saving, the Fabric-wrapped - maybe compiled - model for forward, the optimizer,
    the BatchNorms of the frozen part).
    """
    from senet.models import create_model
    from senet.train.optim import apply_freeze, make_optimizer

    st.seed_everything(config.seed)
    model = create_model(config.model, **kwargs)
    if config.sync_bn:  # before freezing, which keeps the frozen part's BatchNorm layers in eval mode
        model = use_sync_batchnorm(model, fabric)
    if config.init_from and not resuming:
        from senet.train.init_from import load_initial_weights, read_source

        fabric.print(load_initial_weights(model, read_source(config.init_from)))
    frozen_norms = apply_freeze(model, config.freeze)
    _on_rank_zero(fabric, _claim_out_dir, config)  # only now that the data and the model are known to work
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    forward_model, optimizer = fabric.setup(torch.compile(model) if config.compile else model, optimizer)
    return model, forward_model, optimizer, frozen_norms


def _make_loaders(fabric: Any, config: TrainConfig, bundle: Any) -> tuple[DistributedSampler, Any, Any]:
    """Each process gets ``batch_size / world`` images of every global batch; validation is sharded, not padded."""
    from senet.data import make_loader

    world, rank = fabric.world_size, fabric.global_rank
    per_process_batch = config.batch_size // world
    sampler = DistributedSampler(bundle.train, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
    train_loader = make_loader(bundle.train, per_process_batch, shuffle=False, workers=config.workers,
                               seed=config.seed, drop_last=True, sampler=sampler)
    val_loader = None if bundle.val is None else make_loader(
        bundle.val, per_process_batch, shuffle=False, workers=config.workers, seed=config.seed,
        sampler=ShardSampler(len(bundle.val), rank, world))
    return sampler, train_loader, val_loader


def _check_finite(row: dict[str, Any], model: nn.Module, out: Path, last_epoch: int) -> None:
    """A NaN/inf validation loss, or weights that are no longer finite after the epoch, fail the run before
    anything of the epoch is written: the checkpoint and ``best/`` of earlier epochs stay as they were."""
    if row["val_loss"] is None or math.isfinite(row["val_loss"]):  # None: no validation part held out
        bad = next((name for name, t in model.state_dict().items()
                    if t.is_floating_point() and not bool(torch.isfinite(t).all())), None)
        if bad is None:
            return
        what = f"weight {bad} is not finite after epoch {row['epoch']}"
    else:
        what = f"validation loss is {row['val_loss']} at epoch {row['epoch']}"
    kept = f"the checkpoint of epoch {last_epoch} in {out} is kept" if last_epoch else "nothing was saved"
    raise SenetError(f"training diverged: {what}; {kept}; try a lower --lr, a --warmup, or --precision 32")


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader: Any, num_classes: int, *, fabric: Any = None, device: Any = None,
                    channels_last: bool = False, progress: bool = False, desc: str = "eval") -> ClassificationMeter:
    """Loss (plain cross-entropy), top-1/top-5 and confusion matrix of ``model`` over ``loader``.

    Batches go to ``fabric``'s device (and the counts are summed over its processes), else to ``device``.
    """
    was_training = model.training
    model.eval()
    meter = ClassificationMeter(num_classes)
    for batch in progress_bar(loader, desc=desc, enabled=progress):
        images, labels = fabric.to_device(batch) if fabric is not None else (t.to(device) for t in batch)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = model(images).float()
        meter.update(logits, labels, float(F.cross_entropy(logits, labels, reduction="sum")))
    meter.sync(fabric)
    model.train(was_training)
    return meter


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return list(value) if isinstance(value, tuple) else value
