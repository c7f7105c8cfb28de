"""The training loop on Lightning Fabric: plain PyTorch you can read top to bottom.

Fabric supplies the devices, the DDP wrapping, mixed precision and process launch; the loop itself - lr schedule,
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
from senet.train.config import TrainConfig
from senet.train.distributed import gather_rank_states, restore_rank_state, use_sync_batchnorm
from senet.train.metrics import ClassificationMeter
from senet.train.precision import check_precision, fabric_precision
from senet.train.schedules import lr_factor

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

    try:
        fabric = Fabric(accelerator=config.accelerator, devices=config.devices, strategy=config.strategy,
                        num_nodes=config.num_nodes, precision=fabric_precision(config.precision))
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
                            image_size=config.image_size)

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
    saved = st.load_train_state(out) if config.resume and (out / st.STATE_FILE).exists() else None
    if saved is not None:
        st.check_state_matches_run(saved, config.recipe(), out)
    bundle = _load_data(fabric, config)
    _check_batch_fits(config, len(bundle.train), fabric.world_size)  # before the run folder is claimed
    kwargs = model_kwargs_for(config, bundle)
    model, forward_model, fopt, frozen_norms = _setup_model(fabric, config, kwargs, saved)
    start_epoch, step, history, best = 0, 0, [], {"top1": -1.0, "epoch": 0}
    if saved is not None:
        start_epoch, step, history, best = saved["epoch"], saved["step"], list(saved["history"]), dict(saved["best"])
        if fabric.global_rank == 0:
            st.restore_rng(saved["rng"])
        else:  # replaced by this rank's own saved states below, when the checkpoint has them
            st.seed_everything(config.seed + 1_000_003 * fabric.global_rank + start_epoch)
    elif fabric.global_rank > 0:
        st.seed_everything(config.seed + 1_000_003 * fabric.global_rank)  # distinct augmentations per process

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
    total_steps = steps_per_epoch * config.epochs
    schedule = {"schedule": config.schedule, "total_steps": total_steps, "steps_per_epoch": steps_per_epoch,
                "milestones": config.step_milestones(), "warmup_steps": round(config.warmup * steps_per_epoch)}
    writer = _tensorboard(out) if fabric.is_global_zero else None
    show_bar = config.progress and fabric.is_global_zero
    saved_info = {"dataset": {"name": bundle.name, "num_classes": bundle.num_classes, "in_chans": bundle.in_chans,
                              "image_size": bundle.image_size, "mean": _plain(bundle.mean), "std": _plain(bundle.std)},
                  "class_names": list(bundle.class_names), "train_config": config.to_dict()}

    for epoch in range(start_epoch, config.epochs):
        epoch_start = time.perf_counter()
        train_sampler.set_epoch(epoch)
        bar = progress_bar(train_loader, desc=f"epoch {epoch + 1}/{config.epochs}", enabled=show_bar)
        totals, step, lr = _train_one_epoch(fabric, forward_model, fopt, bar, config, schedule, step, epoch,
                                            last_good_epoch=len(history), frozen_norms=frozen_norms)
        train_seconds = time.perf_counter() - epoch_start
        val = {"loss": None, "top1": None, "top5": None} if val_loader is None else evaluate_loader(
            forward_model, val_loader, bundle.num_classes, fabric=fabric, channels_last=config.channels_last).summary()
        loss_sum, correct, seen = totals
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"], "lr": lr,
               "epoch_time": time.perf_counter() - epoch_start, "images_per_s": seen / train_seconds}
        _check_finite(row, model, out, len(history))
        history.append(row)
        improved = row["val_top1"] is not None and row["val_top1"] > best["top1"]
        if improved:
            best = {"top1": row["val_top1"], "epoch": row["epoch"]}
        shown_val = "no validation" if val_loader is None else (
            f"val loss {row['val_loss']:.4f} top-1 {row['val_top1']:.4f} top-5 {row['val_top5']:.4f}")
        fabric.print(f"epoch {row['epoch']}/{config.epochs}: train loss {row['train_loss']:.4f} "
                     f"acc {row['train_acc']:.4f} | {shown_val} | lr {lr:.4g} | {row['images_per_s']:.0f} img/s, "
                     f"{row['epoch_time']:.1f} s")
        ranks = gather_rank_states(fabric, generators)  # a collective: every process's RNG, for an exact resume
        if fabric.is_global_zero:
            _write_epoch(out, model, fopt, row, history, best, improved, step, config, saved_info, writer,
                         {**{name: g.get_state() for name, g in generators.items()}, "ranks": ranks})
        fabric.barrier()
    if writer is not None:
        writer.close()
    from senet.train.final_test import evaluate_test_once

    test = evaluate_test_once(fabric, model, forward_model, bundle, config, best, history)
    return TrainResult(out=out, model=config.model, model_kwargs=kwargs, history=history,
                       best_top1=max(best["top1"], 0.0), best_epoch=best["epoch"], test=test)


def _setup_model(fabric: Any, config: TrainConfig, kwargs: dict[str, Any], saved: dict | None):
    """Build the model (same initial weights on every process; from ``init_from`` when set), freeze what
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
    if config.init_from and saved is None:
        from senet.train.init_from import load_initial_weights, read_source

        fabric.print(load_initial_weights(model, read_source(config.init_from)))
    frozen_norms = apply_freeze(model, config.freeze)
    _on_rank_zero(fabric, _claim_out_dir, config)  # only now that the data and the model are known to work
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if saved is not None:
        _restore(model.load_state_dict, saved["model"], config)
    optimizer = make_optimizer(model, config)
    forward_model, optimizer = fabric.setup(torch.compile(model) if config.compile else model, optimizer)
    if saved is not None:  # after setup, so its tensors land on the model's device
        _restore(optimizer.load_state_dict, saved["optimizer"], config)
    return model, forward_model, optimizer, frozen_norms


def _restore(load: Any, state: dict, config: TrainConfig) -> None:
    """``load(state)``; a state that does not fit the model or optimizer of ``run.json`` is a SenetError."""
    try:
        load(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SenetError(f"cannot resume: {config.out_dir / st.STATE_FILE} does not fit the run described by "
                         f"{config.out_dir / st.RUN_FILE} ({first}); start again with --overwrite") from exc


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


def _train_one_epoch(fabric: Any, model: nn.Module, optimizer: Any, batches: Any, config: TrainConfig,
                     schedule: dict[str, Any], step: int, epoch: int, last_good_epoch: int, frozen_norms=()):
    """One pass over the training batches; returns ((loss sum, correct, seen) over all processes, step, last lr)."""
    from senet.train.optim import train_mode

    train_mode(model, list(frozen_norms))
    loss_sum, correct, seen, lr = 0.0, 0, 0, config.lr
    start = time.perf_counter()
    for batch in batches:
        images, labels = fabric.to_device(batch)  # (not fabric.setup_dataloaders: it would reset set_epoch)
        lr = config.lr * lr_factor(step, **schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        loss_value = _checked_loss(fabric, loss, step, epoch, config.out_dir, last_good_epoch)
        optimizer.zero_grad(set_to_none=True)
        fabric.backward(loss)
        if config.clip_grad_norm is not None:
            fabric.clip_gradients(model, optimizer, max_norm=config.clip_grad_norm)
        optimizer.step()
        step += 1
        loss_sum += loss_value * labels.shape[0]
        correct += int((logits.detach().argmax(dim=1) == labels).sum())
        seen += labels.shape[0]
        if hasattr(batches, "set_postfix"):
            rate = seen * fabric.world_size / max(time.perf_counter() - start, 1e-9)
            batches.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", img_s=f"{rate:.0f}",
                                lr=f"{lr:.4g}", refresh=False)  # redraw at the bar's own interval
    if hasattr(batches, "close"):
        batches.close()
    totals = torch.tensor([loss_sum, correct, seen], dtype=torch.float64, device=fabric.device)
    return fabric.all_reduce(totals, reduce_op="sum").cpu().tolist(), step, lr


def _write_epoch(out: Path, model: nn.Module, optimizer: Any, row: dict, history: list, best: dict, improved: bool,
                 step: int, config: TrainConfig, saved_info: dict, writer: Any, data_order: dict) -> None:
    """The end-of-epoch files, in an order that makes a kill at any moment safe: the state file comes last."""
    from senet.io import save_model
    from senet.train.plots import plot_run_curves

    extra = {**saved_info, "metrics": row, "epoch": row["epoch"], "best": best}
    if improved:
        save_model(model, out / st.BEST_DIR, extra=extra)
    save_model(model, out, extra=extra)
    st.write_metrics_csv(out, history)
    plot_run_curves(history, out / "curves.png", config.model, config.data)
    if writer is not None:
        for key in st.METRIC_COLUMNS[1:]:
            if row[key] is not None:
                writer.add_scalar(key, row[key], row["epoch"])
        writer.flush()
    st.save_train_state(out, {
        "epoch": row["epoch"], "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "rng": st.capture_rng(), "data_order": {**data_order, "seed": config.seed, "epoch": row["epoch"]},
        "history": history, "best": best, "recipe": config.recipe(),
    })


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


def _checked_loss(fabric: Any, loss: torch.Tensor, step: int, epoch: int, out: Path, last_epoch: int) -> float:
    """The loss as a float; NaN or inf on any process stops the run, keeping the last good checkpoint."""
    value = float(loss.detach())
    bad = not math.isfinite(value)
    if fabric.world_size > 1:
        bad = bool(fabric.all_reduce(torch.tensor(float(bad), device=fabric.device), reduce_op="sum") > 0)
    if bad:
        kept = f"the checkpoint of epoch {last_epoch} in {out} is kept" if last_epoch else "no checkpoint was written"
        raise SenetError(f"loss is not finite ({value}) at step {step + 1} (epoch {epoch + 1}); stopped, {kept}; "
                         f"try a lower --lr, a --warmup, or --precision 32")
    return value


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


def _tensorboard(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return list(value) if isinstance(value, tuple) else value
