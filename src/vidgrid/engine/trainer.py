"""The training loop and runs that survive crashes, preemption and bad input (the run itself is
built by :mod:`vidgrid.engine.run`).

Per iteration: schedule, move, normalise, mix, forward, loss, backward, clip, step.
Per epoch: switch to the epoch's multigrid segment (it decides the batch sampler and the BatchNorm
groups; the model and optimizer are never rebuilt), evaluate, checkpoint. One DataLoader serves the
whole run, its batch sampler the epochs' samplers in a chain, so its workers never idle at an epoch
boundary. A multigrid run recomputes its BN statistics on base-shape clips before evaluating
("precise BN"): the running ones average whatever shapes the last iterations had.

Baseline training is a multigrid schedule of one segment, so both run through the same code. Every
piece of state a resumed run needs (model, optimizer, grad scaler, mixer, sampler position, RNGs,
counters) is in the checkpoint; ``--resume auto`` continues mid-epoch where the run stopped, and on
CPU with ``train.deterministic`` the resumed run is bit-identical to an uninterrupted one (the
dataset draws its augmentation from (seed, epoch, index), whatever the number of workers).

SIGTERM / SIGINT finish the current iteration (or abandon a validation), write a checkpoint and return
(:mod:`vidgrid.engine.stopping`); a NaN or infinite loss stops the run before its step. The videos
skipped as broken go into the checkpoints and are gathered from every process for the summary. On
CPU the training process uses the cores its loader workers leave free (unless ``OMP_NUM_THREADS`` is set): more OpenMP threads than
free cores make every step wait on descheduled threads.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from vidgrid.config import Config, config_to_dict
from vidgrid.engine import distributed as D
from vidgrid.engine.checkpoint import link_best, rng_state, set_rng_state, write_checkpoint
from vidgrid.engine.device import normalize_clip
from vidgrid.engine.epoch_chain import Batches, EpochChain
from vidgrid.engine.evaluate import ViewScores, collect_scores, report
from vidgrid.engine.loading import loading, make_loader
from vidgrid.engine.model_card import run_facts, write_model_card
from vidgrid.engine.logging import Progress, format_summary, plot_run, write_summary
from vidgrid.engine.optim import clip_grad_norm, set_lr
from vidgrid.engine.precise_bn import recompute_bn_statistics
from vidgrid.engine.run import AUTOCAST, Run, setup
from vidgrid.engine.run_folder import check_run_folder
from vidgrid.engine.state import save_parts
from vidgrid.engine.stopping import StopRequest, StopWhileWaiting, resume_command
from vidgrid.data.dataset import VideoTestDataset
from vidgrid.errors import VidgridError
from vidgrid.multigrid.sampler import ShortCycleBatchSampler
from vidgrid.multigrid.schedule import Segment
from vidgrid.tasks import Task
from vidgrid.types import ClipShape

class NonFiniteLossError(VidgridError):
    """The loss became NaN or infinite; the step was not taken and no checkpoint was written."""


# --------------------------------------------------------------------------------------------------
# the loop


def train_one_epoch(
    run: Run, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], sampler: ShortCycleBatchSampler,
    progress: Progress | None,
) -> None:
    """The epoch's loaded batches from the sampler's position; returns early on a stop request."""
    cfg, state, device = run.cfg, run.state, run.env.device
    run.net.train()
    meter = Throughput()
    for clips, targets, _ in batches:
        # schedule: LR at the fractional epoch (warm-up × policy × long-cycle multiplier)
        lr = run.lr_at(state.epoch + state.step / sampler.batches_per_epoch)
        set_lr(run.optimizer, lr)
        # move and normalise: uint8 (B, C, T, H, W) on the device -> float
        clips = model_input(run, clips)
        targets = targets.to(device, non_blocking=True)
        # mix: Mixup / CutMix and the task's label smoothing -> soft targets
        mixed = run.mixer(clips, targets)
        # forward and loss
        with run.autocast:
            losses = run.task.losses(run.task.forward(run.net, mixed.clips, mixed.targets), mixed.targets)
        loss = losses["total"]
        mean_loss, batch, stop = agree(loss, clips.shape[0], run)
        # backward, clip, step
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        grad_norm = clip_grad_norm(run.model.parameters(), cfg.optim.clip_grad_norm)
        run.scaler.step(run.optimizer)
        run.scaler.update()

        # bookkeeping: counters, progress bar, metrics.jsonl
        state.advance(batch)
        log_step(run, progress, meter, loss=mean_loss, lr=lr, grad_norm=grad_norm, shape=ClipShape(*clips.shape[2:4]),
                 epoch=state.epoch + state.step / sampler.batches_per_epoch, terms=losses)
        if stop:
            return
        if cfg.train.checkpoint_every and state.iteration % cfg.train.checkpoint_every == 0:
            save(run)


class Throughput:
    """Training clips per second since the last metrics record."""

    def __init__(self) -> None:
        self.start, self.clips = time.perf_counter(), 0

    def add(self, clips: int) -> float:
        self.clips += clips
        return self.clips / max(time.perf_counter() - self.start, 1e-9)

    def reset(self) -> None:
        self.start, self.clips = time.perf_counter(), 0


def log_step(
    run: Run, progress: Progress | None, meter: Throughput, *, loss: float, lr: float, grad_norm: float,
    shape: ClipShape, epoch: float, terms: dict[str, torch.Tensor],
) -> None:
    """Progress bar every step, a ``metrics.jsonl`` record every ``train.log_every`` steps (rank 0),
    with the task's named loss ``terms`` besides the total as ``loss_<name>`` (this process's batch)."""
    state = run.state
    rate = meter.add(state.last_batch)
    if progress is None:
        return
    progress.update(state.iteration, epoch=state.epoch + 1, loss=loss, lr=lr, clips_per_s=rate, batch=state.last_batch, shape=shape)
    if state.iteration % run.cfg.train.log_every == 0:
        run.logger.log(
            "train", iteration=state.iteration, epoch=round(epoch, 4), loss=loss, lr=lr, grad_norm=grad_norm,
            clips_per_s=round(rate, 2), batch=state.last_batch, frames=shape.frames, crop=shape.crop,
            clips_seen=state.clips_seen,
            **{f"loss_{name}": round(float(term.detach()), 6) for name, term in terms.items() if name != "total"},
        )
        meter.reset()


def agree(loss: torch.Tensor, batch: int, run: Run) -> tuple[float, int, bool]:
    """One small all-reduce: the mean loss, the global batch and whether any process was asked to
    stop; a non-finite loss on any process stops the run before its step, leaving the last good
    checkpoint untouched."""
    finite = bool(torch.isfinite(loss.detach()))
    value = float(loss.detach()) if finite else 0.0
    flags = [value, float(batch), float(not finite), float(run.stop.signal is not None)]
    total, global_batch, bad, stop = D.all_reduce_sum(torch.tensor(flags, dtype=torch.float64, device=run.env.device)).tolist()
    if bad:
        where = f"epoch {run.state.epoch + 1} iteration {run.state.iteration + 1}"
        kept = f"the last good checkpoint is {run.last_checkpoint}" if run.last_checkpoint else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"the loss became {float(loss.detach())} at {where} (lr {run.optimizer.param_groups[0]['lr']:.3g}); the step "
            f"was not taken and {kept}; lower optim.lr, set optim.clip_grad_norm or use train.precision=fp32"
        )
    return total / run.env.world_size, int(global_batch), bool(stop)


def train(cfg: Config, out_dir: Path, *, resume: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Train ``cfg`` into ``out_dir`` (config.yaml, metrics.jsonl, tb/, checkpoints/, summary.json, PNG
    plots) and return the summary; ``resume`` = ``auto`` (the run folder's newest checkpoint) or a path;
    ``overwrite`` replaces a run already in ``out_dir`` (:mod:`vidgrid.engine.run_folder`)."""
    check_run_folder(Path(out_dir), resume=resume, overwrite=overwrite)
    env = D.init_distributed(cfg.train.device)
    try:
        with D.peers_alive(env), torch_settings(cfg, env), StopRequest().installed() as stop:
            run = setup(cfg, Path(out_dir), env, stop, resume, overwrite=overwrite)
            return fit(run)
    finally:
        D.shutdown()


@contextlib.contextmanager
def torch_settings(cfg: Config, env: D.DistEnv) -> Iterator[None]:
    """Deterministic algorithms if asked, and on CPU the cores the loader workers leave free (unless
    ``OMP_NUM_THREADS`` is set); the caller's settings come back afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if env.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(D.cpu_threads(cfg.data.workers))
    torch.use_deterministic_algorithms(cfg.train.deterministic)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def fit(run: Run) -> dict[str, Any]:
    """The epoch loop: segment, train, evaluate, checkpoint; then the summary."""
    cfg, state, schedule = run.cfg, run.state, run.schedule
    started = time.perf_counter() - state.wall_time_s
    progress = (
        Progress(schedule.total_iterations(len(run.train_set)), epochs=schedule.total_epochs, start_iteration=state.iteration)
        if run.env.is_main else None
    )
    # one loader for the rest of the run: its workers run ahead across epoch boundaries
    epochs = range(state.epoch, schedule.total_epochs)
    samplers = [train_sampler(run, schedule.segment_at(epoch), epoch) for epoch in epochs]
    if samplers:
        run.position.restore_into(samplers[0])
    # precise BN's clips come through the same loader: its workers hold the decoded videos
    chain = EpochChain(samplers, after=[precise_bn_batches(run, epoch + 1) if evaluates(run, epoch) else [] for epoch in epochs])
    with loading(train_loader(run, chain), timeout_s=cfg.data.loader_timeout_s, interruptible=interruptible(run)) as loaded:
        for sampler, batches, bn_batches in zip(samplers, chain.lengths, chain.after_lengths):
            epoch, run.position.sampler = sampler.epoch, sampler
            # switch multigrid segment: the sampler's shapes and the BN groups follow it
            segment = schedule.segment_at(epoch)
            D.set_bn_grouping(run.model, run.env, segment.base_batch, bn_base_size=schedule.bn_base_size)
            try:
                train_one_epoch(run, itertools.islice(loaded, batches), sampler, progress)
            except StopWhileWaiting:  # the checkpoint of the last completed iteration
                pass
            state.wall_time_s = time.perf_counter() - started
            if run.stop.signal is not None:
                return preempted(run, progress)
            # evaluate (multigrid: with BN statistics of the base shape); a stop abandons the validation and
            # checkpoints the epoch at its end, not yet evaluated: the resumed run evaluates it first
            evaluating, last = evaluates(run, epoch), epoch + 1 == schedule.total_epochs
            if bn_batches:
                try:
                    precise_bn(run, progress, itertools.islice(loaded, bn_batches))
                except StopWhileWaiting:
                    return preempted(run, progress)
            D.average_buffers(run.model)
            metrics = validate(run, progress, epochs_done=epoch + 1, out_dir=run.out_dir if last else None) if evaluating else {}
            if metrics is None:
                return preempted(run, progress)
            state.epoch, state.step = epoch + 1, 0
            # the task's per-head bookkeeping, then checkpoint (and checkpoints/best*.pt per improved metric)
            improved = state.improves(metrics, run.task.best_checkpoints()) if metrics else []
            for message in run.task.after_validation(run.model, improved) if metrics else []:
                if progress is not None:
                    progress.write(message)
            state.wall_time_s = time.perf_counter() - started
            save(run, best=[run.task.best_checkpoints()[m] for m in improved])
    if progress is not None:
        progress.close()
    return finish(run)


# --------------------------------------------------------------------------------------------------
# per-epoch pieces


def train_sampler(run: Run, segment: Segment, epoch: int) -> ShortCycleBatchSampler:
    """The segment's short cycle over this process's shard, at ``epoch``'s permutation."""
    sampler = ShortCycleBatchSampler(
        len(run.train_set), segment.steps, seed=run.cfg.train.seed, rank=run.env.rank, world_size=run.env.world_size
    )
    sampler.set_epoch(epoch)
    return sampler


def train_loader(run: Run, batches: Iterable[list[tuple[int, ClipShape, int]]]) -> DataLoader:
    """Training clips batched by ``batches`` of ``(index, shape, epoch)`` (the epochs' chained samplers
    and precise BN's batches)."""
    return make_loader(
        run.train_set, batch_sampler=batches, workers=run.cfg.data.workers, seed=run.cfg.train.seed,
        pin_memory=run.env.device.type == "cuda",
    )


def interruptible(run: Run) -> StopRequest | None:
    """The stop request that may interrupt a wait for data: single-process runs only (peers may be in a collective)."""
    return None if run.env.distributed else run.stop


def model_input(run: Run, clips: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, T, H, W) from the loader -> normalised float on the device, in the model's memory format."""
    clips = normalize_clip(clips.to(run.env.device, non_blocking=True), run.cfg.data.mean, run.cfg.data.std)
    return clips.contiguous(memory_format=torch.channels_last_3d) if run.cfg.model.channels_last else clips


def evaluates(run: Run, epoch: int) -> bool:
    """Whether the run validates after training ``epoch`` (0-based): the last epoch, and every
    ``train.eval_every``."""
    every, last = run.cfg.train.eval_every, epoch + 1 == run.schedule.total_epochs
    return last or bool(every and (epoch + 1) % every == 0)


def precise_bn_batches(run: Run, epoch: int) -> Batches:
    """The batches of this process's shard whose BN statistics replace the running ones before the
    validation at ``epoch`` (epochs done): training clips at the base shape and batch, at most
    ``schedule.precise_bn_batches`` of them, none for a baseline."""
    cfg, env = run.cfg, run.env
    if run.schedule.precise_bn_batches == 0:
        return []
    last = run.schedule.segments[-1]  # trains at the base shape and batch
    shape, batch = last.shape, last.base_batch // env.world_size
    order = torch.randperm(len(run.train_set), generator=torch.Generator().manual_seed(cfg.train.seed + epoch))
    # the same number of clips on every process: synchronised BN groups' forward is a collective
    count = min(len(run.train_set) // env.world_size, run.schedule.precise_bn_batches * batch)
    mine = order[env.rank :: env.world_size][:count].tolist()
    return [[(i, shape, epoch) for i in mine[k : k + batch]] for k in range(0, len(mine), batch)]


def precise_bn(run: Run, progress: Progress | None, loaded: Iterable[tuple[torch.Tensor, torch.Tensor, Any]]) -> None:
    """Recompute the BN running statistics on the ``loaded`` batches of :func:`precise_bn_batches`
    before a validation. The global RNG state is restored afterwards, so a resumed run stays
    identical to an uninterrupted one."""
    env, last = run.env, run.schedule.segments[-1]
    rng = rng_state()
    # the groups of the last segment; the next epoch sets its own again
    D.set_bn_grouping(run.model, env, last.base_batch, bn_base_size=run.schedule.bn_base_size)
    try:
        with run.autocast:
            inputs = ((model_input(run, clips), targets.to(env.device)) for clips, targets, _ in loaded)
            used = recompute_bn_statistics(run.model, inputs, forward=lambda model, batch: run.task.forward(model, *batch))
    finally:
        set_rng_state(rng)
    if progress is not None:
        progress.write(f"BatchNorm statistics recomputed on {used} batches of {last.base_batch // env.world_size}x{last.shape}")


def validate(run: Run, progress: Progress | None, *, epochs_done: int, out_dir: Path | None) -> dict[str, float] | None:
    """Multi-view validation after ``epochs_done`` epochs at the test shape of each validation set
    (one per dataset of a multi-dataset run, its files in ``out_dir/<name>``), each process scoring
    its shard; rank 0 reports (and with ``out_dir`` writes predictions.jsonl and the task's plots).
    None: a stop request on any process abandoned it."""
    per_part = {}
    for name, task in run.task.evaluation_tasks().items():
        metrics = validate_set(run, run.val_sets[name], task, out_dir=out_dir / name if out_dir and name else out_dir)
        if metrics is None:
            return None
        per_part[name] = metrics
    metrics = None
    if run.env.is_main:
        metrics = run.task.combine_metrics(per_part)
        run.logger.log("val", iteration=run.state.iteration, epoch=epochs_done, **metrics)
        progress.write(f"validation after epoch {epochs_done}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    run.state.val = D.broadcast_object(metrics)
    return run.state.val


def validate_set(run: Run, dataset: VideoTestDataset, task: Task, *, out_dir: Path | None) -> dict[str, float] | None:
    """One validation set scored by ``task``: its metrics on rank 0 ({} elsewhere), None after a stop request."""
    env, cfg = run.env, run.cfg
    shard = Subset(dataset, range(env.rank, len(dataset), env.world_size))
    loader = make_loader(shard, batch_size=cfg.eval.batch_size, workers=cfg.data.workers, seed=cfg.train.seed)
    try:
        with loading(loader, timeout_s=cfg.data.loader_timeout_s, interruptible=interruptible(run), until=run.stop) as batches:
            mine = collect_scores(
                run.model, batches, task, device=env.device, mean=cfg.data.mean, std=cfg.data.std,
                autocast_dtype=AUTOCAST[cfg.train.precision],
            )
    except StopWhileWaiting:
        pass
    if D.any_process(run.stop.signal is not None, env.device):
        return None
    parts = [p for p in D.gather_objects(mine) if p.scores.numel()]
    result = ViewScores(*(torch.cat([getattr(p, k) for p in parts]) for k in ("scores", "targets", "indices"))) if parts else mine
    if not env.is_main:
        return {}
    return report(result, task, paths=[s.path for s in dataset.annotations.samples], out_dir=out_dir)[0]


def save(run: Run, *, best: Iterable[str] = ()) -> None:
    """Checkpoint the model, what it was trained for and every stateful part of the run (every process
    contributes its RNGs and skipped videos; rank 0 writes); ``best`` names it also gets in
    ``checkpoints/`` (``best.pt``, ``best-<metric>.pt``)."""
    train = save_parts(run.parts())
    if not run.env.is_main:
        return
    ckpt = {
        "model": run.model.state_dict(), "config": config_to_dict(run.cfg), "classes": run.task.classes,
        "task": run.task.name, "train": train,
    }
    folder = run.out_dir / "checkpoints"
    run.last_checkpoint = write_checkpoint(
        ckpt, folder, iteration=run.state.iteration, keep=run.cfg.train.keep_checkpoints, previous=run.last_checkpoint
    )
    for name in best:
        link_best(run.last_checkpoint, name)


def preempted(run: Run, progress: Progress | None) -> dict[str, Any]:
    """After a stop request: checkpoint mid-epoch and say how to resume."""
    save(run)
    if progress is not None:
        progress.close()
    if run.env.is_main:
        print(
            f"{run.stop.signal}: stopped at epoch {run.state.epoch + 1} iteration {run.state.iteration}; checkpoint "
            f"{run.last_checkpoint}\nresume with: {resume_command(run.out_dir / 'config.yaml', run.out_dir, world_size=run.env.world_size)}",
            file=sys.stderr, flush=True,
        )
        run.logger.close()
    return {**summary_of(run), "preempted": run.stop.signal, "checkpoint": str(run.last_checkpoint)}


def summary_of(run: Run) -> dict[str, Any]:
    """The run's summary.json fields (every process must call it: the skipped videos are gathered)."""
    folder, files = run.out_dir / "checkpoints", run.task.best_checkpoints()
    best = run.state.best.get(run.task.best_metric)
    return {
        **run.task.summary_metrics({**run.task.empty_metrics(), **run.state.val}),
        "best": {"metric": run.task.best_metric, **best, "checkpoint": str(folder / files[run.task.best_metric])}
        if best else {},
        "best_epochs": {metric: record["epoch"] for metric, record in run.state.best.items()},
        "wall_time_s": round(run.state.wall_time_s, 3),
        "iterations": run.state.iteration,
        "epochs": run.state.epoch,
        "clips_seen": run.state.clips_seen,
        "skipped_videos": run.skipped.state_dict(),
        "model": run.cfg.model.name,
        "task": run.task.name,
        "multigrid": run.schedule.multigrid,
        "processes": run.env.world_size,
    }


def finish(run: Run) -> dict[str, Any]:
    """summary.json, the plots and model_card.md (rank 0), and a one-line result."""
    summary = {**summary_of(run), "checkpoint": str(run.last_checkpoint)}
    if run.env.is_main:
        run.logger.close()
        summary["plots"] = [str(p) for p in plot_run(run.out_dir, metrics=list(run.task.empty_metrics()))]
        write_summary(run.out_dir, summary)
        write_model_card(run.out_dir, run_facts(run))
        headline = run.task.format_metrics({**run.task.empty_metrics(), **run.state.val})
        print(f"{format_summary(summary, headline=headline)}\nrun folder: {run.out_dir}", file=sys.stderr, flush=True)
    return summary
