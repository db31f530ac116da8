"""Training on the synthetic multiset tasks: :func:`fit_multiset` trains one
``(task, aggregator, seed)`` job, in one process or as one rank of a DDP run
(:mod:`~gnnagg.bench.studies.sizegen.entry`).

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
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from ....data import TASKS, MultisetTaskDataset, make_splits
from ...checkpoints import load_checkpoint, save_checkpoint, settings_digest
from ...registry import AGGREGATORS, AggregatorSpec, degree_histogram
from ...training import DistContext, param_digest, seed_everything
from .config import SizeGenConfig
from .model import SetClassifier

__all__ = [
    "CHECKPOINT_FORMAT",
    "MultisetTensors",
    "build_splits",
    "fit_multiset",
    "training_fingerprint",
]


class MultisetTensors:
    """A graph-form multiset data set as flat tensors: elements, set offsets and labels.

    ``x[ptr[g]:ptr[g+1]]`` are the elements (8 bits each) of multiset ``g`` (the leaves of its
    star graph), ``y[g]`` its label. :meth:`batch` gathers any subset of multisets with their
    elements in set order, so the index passed to aggregators is sorted.
    """

    def __init__(self, dataset: MultisetTaskDataset) -> None:
        if not isinstance(dataset, MultisetTaskDataset) or dataset.form != "graph":
            raise TypeError("dataset: expected a graph-form MultisetTaskDataset")
        if dataset.transform is None:
            # The dataset's own storage: every graph's nodes in a row, its readout node last.
            # Collating 65,536 Data objects one by one takes most of a minute.
            store, slices = dataset._data, dataset.slices
            node_ptr = slices["x"]
            is_element = torch.ones(store.x.shape[0], dtype=torch.bool)
            is_element[node_ptr[1:] - 1] = False
            self.x = store.x[is_element]
            sizes = node_ptr.diff() - 1
            self.y = store.y.view(-1)
        else:
            from torch_geometric.data import Batch

            collated = Batch.from_data_list(list(dataset))
            src = collated.edge_index[0]
            # Edges run leaf -> readout, grouped by graph: their sources are the elements.
            self.x = collated.x.index_select(0, src)
            sizes = torch.bincount(collated.batch[src], minlength=len(dataset))
            self.y = collated.y.view(-1)
        self.ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
        self.sizes = sizes

    def shuffled(self, generator: torch.Generator) -> MultisetTensors:
        """A copy whose elements are reordered inside every multiset (uniformly, from
        ``generator``); sets, sizes and labels are unchanged."""
        owner = torch.repeat_interleave(torch.arange(len(self)), self.sizes)
        keys = torch.rand(owner.numel(), generator=generator, dtype=torch.float64)
        order = torch.argsort(owner.to(torch.float64) + keys)
        out = copy.copy(self)
        out.x = self.x[order]
        return out

    def __len__(self) -> int:
        return self.y.numel()

    def batch(self, ids: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
        """``(x, index, y, num_sets)`` for the multisets ``ids``; ``index`` is sorted."""
        counts = self.sizes[ids]
        index = torch.repeat_interleave(torch.arange(ids.numel()), counts)
        offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        rows = self.ptr[ids][index] + torch.arange(index.numel()) - offsets[index]
        return self.x[rows], index, self.y[ids], int(ids.numel())

    def size_histogram(self) -> Tensor:
        """``hist[d]``: number of multisets with ``d`` elements: the in-degree histogram of
        their readout nodes (PNA's ``deg``)."""
        index = torch.repeat_interleave(torch.arange(self.sizes.numel()), self.sizes)
        return degree_histogram(index, self.sizes.numel())


def _evaluate(model: nn.Module, data: MultisetTensors, batch_size: int, ctx: DistContext) -> float:
    """Accuracy over all of ``data``, each rank taking every ``world_size``-th multiset."""
    was_training = model.training
    model.eval()
    correct = total = 0
    ids = torch.arange(ctx.rank, len(data), ctx.world_size)
    with torch.no_grad():
        for chunk in ids.split(batch_size):
            x, index, y, n = data.batch(chunk)
            logits, _ = model(x.to(ctx.device), index.to(ctx.device), n)
            correct += int((logits.argmax(-1).cpu() == y).sum())
            total += n
    model.train(was_training)
    correct, total = ctx.all_sum([correct, total])
    return correct / max(total, 1)


CHECKPOINT_FORMAT = "gnnagg-sizegen-checkpoint/1"
# Fields of SizeGenConfig that change what an epoch of training does: a checkpoint is resumed
# only under the same values. Epochs, budgets, jobs and test sizes may differ.
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
    "shuffle_elements",
    "val_at_size",
)


def training_fingerprint(task: str, aggregator: str, seed: int, config: SizeGenConfig) -> str:
    """sha256 of what determines the training trajectory of one job (not its length)."""
    return settings_digest(config, _TRAINING_FIELDS, task=task, aggregator=aggregator, seed=seed)


def _check_resumable(state: dict[str, Any]) -> None:
    """The plain values of a checkpoint have their types (the tensors are checked by loading
    them into the model, the optimiser and torch's generator)."""
    for key, kinds in (("epoch", int), ("best_epoch", int), ("best_acc", (int, float)),
                       ("train_time_s", (int, float)), ("val_at_size_curve", list),
                       ("model", dict), ("optimiser", dict), ("best_state", (dict, type(None))),
                       ("rng", torch.Tensor)):
        if isinstance(state[key], bool) or not isinstance(state[key], kinds):
            raise TypeError(f"{key} is a {type(state[key]).__name__}")
    if not 0 <= state["best_epoch"] <= state["epoch"]:
        raise ValueError(f"best epoch {state['best_epoch']} after epoch {state['epoch']}")


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
        config: sizes, model width, epochs, optimiser and regulariser settings, element
            shuffling, the budget (``time_budget_s``) and ``val_at_size``.
        ctx: distributed context (default: one process on the CPU).
        splits: pre-built :class:`MultisetTensors` per split (``"train"``, ``"val"``,
            ``"test_<n>"`` and, with ``config.val_at_size``, ``"val_at_<n>"``), e.g. shared by
            several aggregators; built from ``seed`` if omitted.
        on_epoch: called with ``(epoch, val_acc)`` after every epoch.
        checkpoint: a file to save the whole training state to after every epoch (atomically,
            with its sha256) and to resume from when it exists; one process only. A
            checkpoint of another configuration (:func:`training_fingerprint`) is refused.

    Returns:
        ``(record, model)``: the record has ``task``, ``aggregator``, ``seed``, ``val_acc``
        (best), ``best_epoch``, ``epochs`` (asked), ``epochs_done``, ``stopped_by_budget``,
        ``test_acc`` (size -> accuracy, as strings), ``val_at_size`` (``None`` or
        ``{"size", "final", "at_best"}``), ``train_time_s`` (over all resumed parts),
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
    spec: AggregatorSpec = AGGREGATORS[aggregator]
    train = splits["train"]
    wide_val = f"val_at_{config.val_at_size}" if config.val_at_size is not None else None
    if wide_val is not None and wide_val not in splits:
        raise ValueError(f"splits: no {wide_val!r} split for config.val_at_size")

    seed_everything(seed)
    model = SetClassifier(
        aggregator,
        TASKS[task].num_classes,
        hidden_channels=config.hidden_channels,
        deg=train.size_histogram() if spec.needs_degree else None,
        regularise=config.regularise,
        reg_weight=config.reg_weight,
        reg_samples=config.reg_samples,
    ).to(ctx.device)
    net: nn.Module = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ctx.local_rank] if ctx.device.startswith("cuda") else None
        # Some parameters are legitimately idle in a step (a learned identity element when no
        # node is empty), so DDP must look for them rather than wait for their gradients.
        net = DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    sampler = DistributedSampler(
        range(len(train)), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed
    )
    shuffle = config.shuffle_elements and spec.order_sensitive

    fingerprint = training_fingerprint(task, aggregator, seed, config)
    best_acc, best_epoch, best_state = -1.0, 0, None
    done, previous_time = 0, 0.0
    wide_curve: list[float] = []
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = load_checkpoint(path, CHECKPOINT_FORMAT)
        if state.get("fingerprint") != fingerprint:
            raise ValueError(
                f"checkpoint {path}: written by another configuration of "
                f"{task}/{aggregator}/seed {seed} (different data, model or optimiser "
                "settings); give the run a new output folder"
            )
        try:
            _check_resumable(state)
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            if state["best_state"] is not None:
                copy.deepcopy(model).load_state_dict(state["best_state"])
            torch.set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            # A file whose sha256 was recomputed after it was changed by hand.
            raise ValueError(
                f"checkpoint {path}: not a checkpoint this job can resume "
                f"({type(error).__name__}: {error}); delete it and its .sha256 file"
            ) from None
        best_acc, best_epoch = state["best_acc"], state["best_epoch"]
        best_state = state["best_state"]
        done, previous_time = state["epoch"], state["train_time_s"]
        wide_curve = list(state["val_at_size_curve"])

    def evaluate_wide() -> float | None:
        return _evaluate(model, splits[wide_val], 1024, ctx) if wide_val is not None else None

    best_wide = None
    stopped_by_budget = False
    start = time.perf_counter()
    first_epoch = done + 1
    for epoch in range(first_epoch, config.epochs + 1):
        # Every run trains at least one epoch, so a rerun always makes progress.
        over_budget = (
            config.time_budget_s is not None and time.perf_counter() - start >= config.time_budget_s
        )
        if over_budget and epoch > first_epoch:
            stopped_by_budget = True
            break
        sampler.set_epoch(epoch)
        data = train
        if shuffle:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            data = train.shuffled(gen)
        net.train()
        for chunk in torch.tensor(list(sampler), dtype=torch.long).split(config.batch_size):
            x, index, y, n = data.batch(chunk)
            logits, reg = net(x.to(ctx.device), index.to(ctx.device), n)
            loss = F.cross_entropy(logits, y.to(ctx.device)) + reg
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        val_acc = _evaluate(model, splits["val"], 1024, ctx)
        wide = evaluate_wide()
        if wide is not None:
            wide_curve.append(wide)
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            best_state = copy.deepcopy(model.state_dict())
        done = epoch
        if path is not None:
            save_checkpoint(
                {
                    "format": CHECKPOINT_FORMAT,
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "best_state": best_state,
                    "best_acc": best_acc,
                    "best_epoch": best_epoch,
                    "train_time_s": previous_time + time.perf_counter() - start,
                    "val_at_size_curve": wide_curve,
                    "rng": torch.get_rng_state(),
                },
                path,
            )
        if on_epoch is not None:
            on_epoch(epoch, val_acc)
    train_time = previous_time + time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    if wide_val is not None and best_state is not None:
        best_wide = wide_curve[best_epoch - 1] if len(wide_curve) >= best_epoch else evaluate_wide()
    test_acc = {
        name.removeprefix("test_"): _evaluate(model, data, 256, ctx)
        for name, data in splits.items()
        if name.startswith("test_")
    }
    record = {
        "task": task,
        "aggregator": aggregator,
        "seed": seed,
        "val_acc": best_acc,
        "best_epoch": best_epoch,
        "epochs": config.epochs,
        "epochs_done": done,
        "stopped_by_budget": stopped_by_budget,
        "test_acc": test_acc,
        "val_at_size": None
        if wide_val is None or not wide_curve
        else {"size": config.val_at_size, "final": wide_curve[-1], "at_best": best_wide},
        "train_time_s": round(train_time, 3),
        "num_params": sum(p.numel() for p in model.parameters()),
        "param_digest": param_digest(model),
    }
    return record, model


def build_splits(task: str, seed: int, config: SizeGenConfig) -> dict[str, MultisetTensors]:
    """Generate every split of ``task`` for ``seed`` as :class:`MultisetTensors`."""
    raw = make_splits(
        task,
        form="graph",
        num_train=config.num_train,
        num_val=config.num_val,
        num_test=config.num_test,
        seed=seed,
        train_sizes=config.train_sizes,
        test_sizes=config.test_sizes,
    )
    splits = {name: MultisetTensors(ds) for name, ds in raw.items()}
    if config.val_at_size is not None:
        from ....data import MultisetTaskDataset

        # Its own random stream (named after the split), apart from the test set of that size.
        wide = MultisetTaskDataset(
            task,
            split=f"val_at_{config.val_at_size}",
            num_graphs=config.num_val,
            seed=seed,
            sizes=config.val_at_size,
        )
        splits[f"val_at_{config.val_at_size}"] = MultisetTensors(wide)
    return splits
