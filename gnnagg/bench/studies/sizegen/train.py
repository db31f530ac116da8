"""Training on the synthetic multiset tasks: :func:`fit_multiset` trains one
``(task, aggregator, seed)`` job, in one process or as one rank of a DDP run
(:mod:`~gnnagg.bench.studies.sizegen.entry`).

The protocol is the same for every aggregator: train with Adam, validate every
``eval_every`` steps (or after every epoch), keep the best model on validation, stop at a
validation plateau (``patience`` validations without a better score) or at the cap of
``epochs``, and keep a copy of the model at the first validation that reaches each of
``thresholds``: those copies are tested like the kept model, so aggregators can be compared
at *matched* in-distribution accuracy, apart from how fast they got there (the steps and
CPU-seconds to each threshold are recorded beside).

Under DDP the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, and a
:class:`~torch.utils.data.DistributedSampler` gives each rank its share of every epoch (the
same shuffle on every rank, from the seed and the epoch). Validation and test sets are split
across ranks and the counts summed, so model selection is identical everywhere. The
aggregators' regularisers are computed inside the model's ``forward``, so every parameter they
touch is in DDP's graph; the tensors gnnagg aggregators remember between forward and loss are
plain attributes, which DDP neither broadcasts nor checks.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from ....data import TASKS
from ...checkpoints import load_checkpoint, save_checkpoint, settings_digest
from ...registry import AGGREGATORS, AggregatorSpec
from ...training import DistContext, FitTracker, param_digest, seed_everything
from .config import SizeGenConfig
from .data import MultisetTensors, accuracy, build_splits
from .model import SetClassifier, level_gaps, regulariser_schedule

__all__ = ["CHECKPOINT_FORMAT", "fit_multiset", "training_fingerprint"]

CHECKPOINT_FORMAT = "gnnagg-sizegen-checkpoint/2"
# Fields of SizeGenConfig that change what a step of training does or when the model is
# validated: a checkpoint is resumed only under the same values. Epochs, patience, budgets,
# jobs and test sizes may differ.
_TRAINING_FIELDS = (
    "hidden_channels",
    "num_train",
    "num_val",
    "train_sizes",
    "batch_size",
    "lr",
    "regularise",
    "reg_weight",
    "reg_samples",
    "reg_every",
    "reg_warmup",
    "reg_until",
    "lcm_leaf",
    "lcm_init",
    "lcm_layer_norm",
    "shuffle_elements",
    "val_at_size",
    "eval_every",
    "thresholds",
)


def training_fingerprint(task: str, aggregator: str, seed: int, config: SizeGenConfig) -> str:
    """sha256 of what determines the training trajectory of one job (not its length)."""
    return settings_digest(config, _TRAINING_FIELDS, task=task, aggregator=aggregator, seed=seed)


def _build_model(
    aggregator: str, task: str, config: SizeGenConfig, train: MultisetTensors
) -> SetClassifier:
    spec: AggregatorSpec = AGGREGATORS[aggregator]
    return SetClassifier(
        aggregator,
        TASKS[task].num_classes,
        hidden_channels=config.hidden_channels,
        deg=train.size_histogram() if spec.needs_degree else None,
        regularise=config.regularise,
        reg_weight=config.reg_weight,
        reg_samples=config.reg_samples,
        aggr_options=config.lcm_options(),
    )


def _check_resumable(state: dict[str, Any]) -> None:
    """The plain values of a checkpoint have their types and agree with each other (the
    tensors are checked by loading them into the model, the optimiser and torch's generator)."""
    tracker = state["tracker"]
    for key, value, kinds in (
        ("step", state["step"], int),
        ("train_time_s", state["train_time_s"], (int, float)),
        ("train_cpu_s", state["train_cpu_s"], (int, float)),
        ("model", state["model"], dict),
        ("optimiser", state["optimiser"], dict),
        ("best_state", state["best_state"], (dict, type(None))),
        ("snapshots", state["snapshots"], dict),
        ("rng", state["rng"], torch.Tensor),
        ("tracker", tracker, dict),
        ("tracker.best", tracker["best"], (int, float, type(None))),
        ("tracker.best_step", tracker["best_step"], int),
        ("tracker.since_best", tracker["since_best"], int),
        ("tracker.curve", tracker["curve"], list),
        ("tracker.crossings", tracker["crossings"], dict),
    ):
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise TypeError(f"{key} is a {type(value).__name__}")
    if not 0 <= tracker["best_step"] <= state["step"]:
        raise ValueError(f"best step {tracker['best_step']} after step {state['step']}")
    missing = sorted(set(tracker["crossings"]) - set(state["snapshots"]))
    if missing:
        raise ValueError(f"no snapshot of the model at thresholds {missing}")


def fit_multiset(
    task: str,
    aggregator: str,
    seed: int,
    config: SizeGenConfig,
    ctx: DistContext | None = None,
    splits: dict[str, MultisetTensors] | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    checkpoint: str | Path | None = None,
) -> tuple[dict[str, Any], nn.Module]:
    """Train one model on ``task`` with ``aggregator`` and test it on every test size.

    Args:
        task: a key of :data:`gnnagg.data.TASKS`.
        aggregator: a registry name.
        seed: seeds the data (unless ``splits`` is given), the initialisation and the shuffle.
        config: sizes, model width, epochs (the cap), validation cadence, patience and
            thresholds, optimiser and regulariser settings, element shuffling, the budget
            (``time_budget_s``) and ``val_at_size``.
        ctx: distributed context (default: one process on the CPU).
        splits: pre-built :class:`~.data.MultisetTensors` per split (``"train"``, ``"val"``,
            ``"test_<n>"`` and, with ``config.val_at_size``, ``"val_at_<n>"``), e.g. shared by
            several aggregators; built from ``seed`` if omitted.
        on_epoch: called with ``(epoch, best val_acc)`` after every epoch.
        checkpoint: a file to save the whole training state to after every epoch and when
            training stops (atomically, with its sha256) and to resume from when it exists;
            one process only. A checkpoint of another configuration
            (:func:`training_fingerprint`) is refused.

    Returns:
        ``(record, model)``: the record has ``task``, ``aggregator``, ``seed``, ``val_acc``
        (best), ``best_step``, ``best_epoch``, ``epochs`` (the cap), ``epochs_done``,
        ``steps``, ``stopped`` (``"plateau"``, ``"cap"`` or ``"budget"``),
        ``stopped_by_budget``, ``test_acc`` (size -> accuracy, as strings), ``matched``
        (threshold -> ``{"step", "cpu_s", "val", "test_acc"}`` for each threshold reached),
        ``curve`` (``[step, train CPU-s, val]`` per validation, with the accuracy at
        ``val_at_size`` appended when measured), ``val_at_size`` (``None`` or ``{"size",
        "final", "at_best"}``), ``level_gaps`` (gnnagg LCMs with an inexact monoid:
        :func:`~.model.level_gaps` of the kept model and of each matched one), ``train_time_s``
        and ``train_cpu_s`` (over all resumed parts; validation excluded from the CPU time),
        ``num_params`` and ``param_digest``; the model (unwrapped, with the best validation
        weights) is on ``ctx.device``.
    """
    if task not in TASKS:
        raise ValueError(f"task: unknown task {task!r}; valid tasks are {sorted(TASKS)}")
    if aggregator not in AGGREGATORS:
        raise ValueError(f"aggregator: unknown {aggregator!r}; valid names are {list(AGGREGATORS)}")
    ctx = ctx or DistContext()
    if checkpoint is not None and ctx.distributed:
        raise ValueError("checkpoint: resumable training runs in one process, not under torchrun")
    if splits is None:
        splits = build_splits(task, seed, config)
    train = splits["train"]
    wide_val = f"val_at_{config.val_at_size}" if config.val_at_size is not None else None
    if wide_val is not None and wide_val not in splits:
        raise ValueError(f"splits: no {wide_val!r} split for config.val_at_size")

    seed_everything(seed)
    model = _build_model(aggregator, task, config, train).to(ctx.device)
    net: nn.Module = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ctx.local_rank] if ctx.device.startswith("cuda") else None
        # Some parameters are legitimately idle in a step (a learned identity element when no
        # node is empty; the regulariser's on steps it skips), so DDP must look for them
        # rather than wait for their gradients.
        net = DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    sampler = DistributedSampler(
        range(len(train)), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed
    )
    steps_per_epoch = -(-len(sampler) // config.batch_size)
    shuffle = config.shuffle_elements and AGGREGATORS[aggregator].order_sensitive
    schedule = regulariser_schedule(config)

    fingerprint = training_fingerprint(task, aggregator, seed, config)
    tracker = FitTracker(patience=config.patience, thresholds=config.thresholds)
    best_state, snapshots = None, {}
    step, previous_time, previous_cpu, stopped = 0, 0.0, 0.0, "cap"
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = load_checkpoint(path, CHECKPOINT_FORMAT)
        if state.get("fingerprint") != fingerprint:
            raise ValueError(
                f"checkpoint {path}: written by another configuration of "
                f"{task}/{aggregator}/seed {seed} (different data, model, optimiser or "
                "validation settings); give the run a new output folder"
            )
        try:
            _check_resumable(state)
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            tracker.load_state_dict(state["tracker"])
            for weights in [state["best_state"], *state["snapshots"].values()]:
                if weights is not None:
                    copy.deepcopy(model).load_state_dict(weights)
            torch.set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            # A file whose sha256 was recomputed after it was changed by hand.
            raise ValueError(
                f"checkpoint {path}: not a checkpoint this job can resume "
                f"({type(error).__name__}: {error}); delete it and its .sha256 file"
            ) from None
        best_state, snapshots = state["best_state"], state["snapshots"]
        step, previous_time = state["step"], state["train_time_s"]
        previous_cpu = state["train_cpu_s"]

    # Training CPU-s (this process; validation, testing and checkpoints excluded).
    cpu = {"spent": previous_cpu, "since": time.process_time()}

    def pause() -> None:
        cpu["spent"] += time.process_time() - cpu["since"]

    def resume() -> None:
        cpu["since"] = time.process_time()

    def save() -> None:
        if path is None:
            return
        save_checkpoint(
            {
                "format": CHECKPOINT_FORMAT,
                "fingerprint": fingerprint,
                "step": step,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "tracker": tracker.state_dict(),
                "best_state": best_state,
                "snapshots": snapshots,
                "train_time_s": previous_time + time.perf_counter() - start,
                "train_cpu_s": cpu["spent"],
                "rng": torch.get_rng_state(),
            },
            path,
        )

    def validate() -> bool:
        """Validate at ``step`` (training's clock paused); True at a plateau."""
        nonlocal best_state
        pause()
        val_acc = accuracy(model, splits["val"], 1024, ctx)
        improved, reached = tracker.update(step, cpu["spent"], val_acc)
        if wide_val is not None:
            tracker.curve[-1].append(accuracy(model, splits[wide_val], 1024, ctx))
        if improved:
            best_state = copy.deepcopy(model.state_dict())
        for threshold in reached:
            snapshots[tracker.key(threshold)] = copy.deepcopy(model.state_dict())
        resume()
        return tracker.plateaued

    start = time.perf_counter()
    first_epoch = step // steps_per_epoch + 1
    done_epoch = first_epoch - 1
    if tracker.plateaued:
        stopped = "plateau"
    resume()
    for epoch in range(first_epoch, config.epochs + 1):
        if stopped == "plateau":
            break
        # Every run trains at least one epoch, so a rerun always makes progress.
        over_budget = (
            config.time_budget_s is not None and time.perf_counter() - start >= config.time_budget_s
        )
        if over_budget and epoch > first_epoch:
            stopped = "budget"
            break
        sampler.set_epoch(epoch)
        data = train
        if shuffle:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            data = train.shuffled(gen)
        net.train()
        chunks = torch.tensor(list(sampler), dtype=torch.long).split(config.batch_size)
        # A run resumed from a checkpoint taken mid-epoch skips the batches already trained.
        for chunk in chunks[step - (epoch - 1) * steps_per_epoch :]:
            x, index, y, n = data.batch(chunk)
            model.reg_weight = schedule.weight_at(step)
            logits, reg = net(x.to(ctx.device), index.to(ctx.device), n)
            loss = F.cross_entropy(logits, y.to(ctx.device)) + reg
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            if config.eval_every is not None and step % config.eval_every == 0 and validate():
                stopped = "plateau"
                break
        if stopped != "plateau":
            done_epoch = epoch
            if config.eval_every is None and validate():
                stopped = "plateau"
        pause()
        save()
        resume()
        if on_epoch is not None:
            on_epoch(epoch, tracker.best)
    if stopped != "plateau" and (not tracker.curve or tracker.curve[-1][0] != step):
        # Steps after the last scheduled validation (a cap or budget mid-cadence) count too.
        validate()
        pause()
        save()
    else:
        pause()
    train_time = previous_time + time.perf_counter() - start
    return _finish(
        model, splits, config, ctx, tracker, best_state, snapshots,
        {
            "task": task,
            "aggregator": aggregator,
            "seed": seed,
            "epochs": config.epochs,
            "epochs_done": done_epoch,
            "steps": step,
            "stopped": stopped,
            "stopped_by_budget": stopped == "budget",
            "train_time_s": round(train_time, 3),
            "train_cpu_s": round(cpu["spent"], 3),
        },
        steps_per_epoch,
        wide_val,
    )  # fmt: skip


def _finish(
    model: SetClassifier,
    splits: dict[str, MultisetTensors],
    config: SizeGenConfig,
    ctx: DistContext,
    tracker: FitTracker,
    best_state: dict | None,
    snapshots: dict[str, dict],
    record: dict[str, Any],
    steps_per_epoch: int,
    wide_val: str | None,
) -> tuple[dict[str, Any], nn.Module]:
    """Test the matched snapshots and the kept model; the finished record and the model."""
    tests = [name for name in splits if name.startswith("test_")]

    def test_all() -> dict[str, float]:
        return {n.removeprefix("test_"): accuracy(model, splits[n], 256, ctx) for n in tests}

    matched: dict[str, Any] = {}
    gaps: dict[str, Any] = {}
    for key, crossing in tracker.crossings.items():
        model.load_state_dict(snapshots[key])
        matched[key] = {**crossing, "test_acc": test_all()}
        gaps[key] = level_gaps(model, splits)
    if best_state is not None:
        model.load_state_dict(best_state)
    best_row = next((row for row in tracker.curve if row[0] == tracker.best_step), None)
    wide = None
    if wide_val is not None and tracker.curve and len(tracker.curve[-1]) > 3:
        wide = {"size": config.val_at_size, "final": tracker.curve[-1][3], "at_best": best_row[3]}
    kept_gaps = level_gaps(model, splits)
    record.update(
        {
            "val_acc": tracker.best if tracker.best is not None else -1.0,
            "best_step": tracker.best_step,
            "best_epoch": -(-tracker.best_step // steps_per_epoch),
            "test_acc": test_all(),
            "matched": matched,
            "curve": tracker.curve,
            "val_at_size": wide,
            "level_gaps": None if kept_gaps is None else {"kept": kept_gaps, "matched": gaps},
            "num_params": sum(p.numel() for p in model.parameters()),
            "param_digest": param_digest(model),
        }
    )
    return record, model
