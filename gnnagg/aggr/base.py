"""The base class for aggregators that read each neighbourhood as a sequence of its own messages.

PyG's LCM and recurrent aggregators pad every node to the largest degree (``to_dense_batch``) and
require a sorted index. Subclasses of :class:`NeighbourhoodAggregation` instead receive the
messages regrouped by target node (``Neighbourhoods``: rows sorted by group, CSR offsets) for any
index order, with no padding, and optionally shuffled within each neighbourhood while training.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn.aggr import Aggregation

from .._checks import check_bool, check_int, check_positive, check_tensor
from .._torchscript import NoTorchScript
from ..segment import SegmentPlan, resolve_plan
from ..segment.plan import check_dim_size

__all__ = [
    "LAZY",
    "NeighbourhoodAggregation",
    "Neighbourhoods",
    "PerThread",
    "check_in_channels",
    "check_messages",
    "group_neighbourhoods",
    "linear",
]

_PRECISION = {torch.float16: 0, torch.bfloat16: 0, torch.float32: 1, torch.float64: 2}
#: ``in_channels=-1``: learnt from the first forward, as in PyG's lazy modules.
LAZY = -1


def check_in_channels(value: object) -> int:
    """``in_channels`` as a positive int, or ``-1`` (lazy: learnt from the first forward)."""
    if check_int(value, "in_channels") == LAZY:
        return LAZY
    return check_positive(value, "in_channels")


def linear(in_channels: int, out_channels: int, bias: bool = True) -> nn.Module:
    """``nn.Linear``, or PyG's lazy ``Linear`` for ``in_channels=-1`` (its weight is an
    uninitialised parameter until the first forward; same keys in a state dict)."""
    if in_channels == LAZY:
        from torch_geometric.nn.dense.linear import Linear

        return Linear(LAZY, out_channels, bias=bias)
    return nn.Linear(in_channels, out_channels, bias=bias)


@dataclass
class Neighbourhoods:
    """Messages regrouped by target node.

    ``messages[ptr[v]:ptr[v + 1]]`` are node ``v``'s messages in reading order; ``rows[p]`` is the
    original row of ``messages[p]``, or ``rows`` is ``None`` when the input was grouped already
    (``messages`` is then the input itself); ``messages`` has the aggregated dimension first.
    """

    messages: Tensor
    rows: Tensor | None
    plan: SegmentPlan

    @property
    def ptr(self) -> Tensor:
        return self.plan.ptr

    @property
    def degrees(self) -> Tensor:
        return self.plan.degrees

    @property
    def num_nodes(self) -> int:
        return self.plan.dim_size


def within_group_order(
    plan: SegmentPlan, shuffle: bool, generator: torch.Generator | None = None
) -> Tensor | None:
    """Original rows in grouped order: by group, ties in edge order or uniformly shuffled;
    ``None`` when the rows are in that order already."""
    if not shuffle:
        return plan.perm
    index = plan.index
    keys = torch.rand(plan.num_rows, device=index.device, generator=generator)
    shuffled = keys.argsort()
    return shuffled[torch.sort(index[shuffled], stable=True).indices]


def check_messages(x: object, dim: int) -> Tensor:
    """``x`` when it is a dense floating-point tensor in which ``dim`` exists."""
    if isinstance(x, Tensor) and x.layout != torch.strided:
        raise TypeError(
            f"x must be a dense (strided) tensor, got layout {x.layout} (convert it with "
            ".to_dense())"
        )
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim={dim} is out of range for x with {x.dim()} dimensions")
    return x


def group_neighbourhoods(
    x: Tensor,
    index: Tensor | None = None,
    ptr: Tensor | None = None,
    dim_size: int | None = None,
    dim: int = -2,
    *,
    plan: SegmentPlan | None = None,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Neighbourhoods:
    """Validate the inputs of an aggregation and regroup ``x``'s rows by target node.

    Give ``index`` (any order), ``ptr`` (rows grouped already; it takes precedence when both
    are given, as in PyG) or ``plan``."""
    x0 = check_messages(x, dim).movedim(dim, 0)
    if index is not None and ptr is not None and plan is None:
        # PyG passes both for input grouped already (EdgeIndex, sparse adjacency); as in its
        # own aggregations, ptr is the grouping then.
        index = None
    # cache=True: layers and epochs over one graph share the sort and what is derived from it.
    plan = resolve_plan(x0.shape[0], index, ptr, dim_size, plan, cache=True)
    if plan.device != x.device:
        raise ValueError(f"index/ptr is on {plan.device} but x is on {x.device}")
    rows = within_group_order(plan, shuffle, generator)
    # Sorted input needs no gather (whose backward would be a scatter over all messages).
    messages = x0 if rows is None else x0.index_select(0, rows)
    return Neighbourhoods(messages, rows, plan)


class PerThread:
    """One value per thread: what a module's forward remembers for a later regulariser.

    PyTorch modules may run forwards concurrently from several threads (each with its own
    autograd graph, e.g. Hogwild-style training or a thread pool serving one model); each
    thread's regulariser must see its own forward, not whichever ran last. Copies and pickles
    start empty, as after construction: the remembered tensors belong to an autograd graph.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self) -> Any:
        """This thread's value, or ``None`` before its first :meth:`set`."""
        return getattr(self._local, "value", None)

    def set(self, value: Any) -> None:
        """Replace this thread's value (only the last forward's tensors stay alive)."""
        self._local.value = value

    def clear(self) -> None:
        """Forget the value of every thread."""
        self._local = threading.local()

    def __reduce__(self):
        return (PerThread, ())

    def __deepcopy__(self, memo: dict) -> PerThread:
        return PerThread()


class NeighbourhoodAggregation(NoTorchScript, Aggregation):
    """A PyG ``Aggregation`` whose subclasses implement :meth:`aggregate_groups`.

    Handles argument checking, any index order, ``ptr`` input, any ``dim`` and the optional
    per-forward shuffle of each neighbourhood (training mode only). Subclasses return
    ``[num_nodes, *rest, out_channels]`` with the node dimension first; this class moves it to
    ``dim``.
    """

    def __init__(self, shuffle: bool = False) -> None:
        super().__init__()
        self.shuffle = check_bool(shuffle, "shuffle")
        #: What the last forward of each thread remembered for the regularisers.
        self._last_forward = PerThread()

    def aggregate_groups(self, groups: Neighbourhoods) -> Tensor:
        raise NotImplementedError

    def work_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype to compute in for messages of ``dtype``: the parameters' dtype.

        Lower-precision messages (float16/bfloat16 into a float32 module) are computed in the
        parameters' precision and the output is cast back; messages more precise than the
        parameters are a ``TypeError`` rather than silently truncated.
        """
        param = next(self.parameters(), None)
        if param is None or dtype == param.dtype:
            return dtype
        if _PRECISION.get(dtype, 3) >= _PRECISION.get(param.dtype, 3):
            raise TypeError(
                f"x has dtype {dtype} but {type(self).__name__}'s parameters are {param.dtype}; "
                f"convert the module (e.g. .to({dtype})) or the messages"
            )
        return param.dtype

    def _check_channels(self, x: Tensor, dim: int) -> None:
        # Subclasses with an ``in_channels`` read the last dimension of x as channels.
        in_channels = getattr(self, "in_channels", None)
        if in_channels is None or not isinstance(x, Tensor) or x.dim() == 0:
            return
        if -x.dim() <= dim < x.dim() and dim % x.dim() == x.dim() - 1:
            raise ValueError(
                f"dim={dim} is the channel dimension of x (shape {tuple(x.shape)}); the "
                "aggregated dimension must come before the last one"
            )
        if in_channels == LAZY:
            self._initialize_lazily(x.shape[-1])
        elif x.shape[-1] != in_channels:
            raise ValueError(
                f"x has {x.shape[-1]} channels in its last dimension, but in_channels={in_channels}"
            )

    @torch.compiler.disable
    def _initialize_lazily(self, in_channels: int) -> None:
        # Parameters come into being here: not something to trace.
        self._initialize_channels(int(in_channels))

    def _initialize_channels(self, in_channels: int) -> None:
        """Learn ``in_channels`` from the first messages of a lazy module (``in_channels=-1``)
        and initialise what depends on it; subclasses extend it (PyG's lazy ``Linear``
        initialises itself at its first call)."""
        self.in_channels = int(in_channels)

    def __getstate__(self) -> dict:
        # Tensors remembered from the last forward belong to an autograd graph: copies (shallow
        # ones too) and pickles start without them, as after construction.
        state = self.__dict__.copy()
        for key, value in state.items():
            if isinstance(value, PerThread):
                state[key] = PerThread()
        return state

    def _apply(self, fn, *args, **kwargs):
        # .to(), .double(), .cuda(), ...: what the last forward remembered is in the old dtype
        # and on the old device, so it is forgotten, as for a copy.
        for value in self.__dict__.values():
            if isinstance(value, PerThread):
                value.clear()
        return super()._apply(fn, *args, **kwargs)

    def __call__(
        self,
        x: Tensor,
        index: Tensor | None = None,
        ptr: Tensor | None = None,
        dim_size: int | None = None,
        dim: int = -2,
        **kwargs,
    ) -> Tensor:
        # PyG's __call__ reads index.max() and invents a zero index when neither index nor ptr
        # is given; check the types first (so bad ones get errors that name them) and keep a
        # plan from being mixed with that invented index.
        check_tensor(x, "x")
        for name, value in (("index", index), ("ptr", ptr)):
            if value is not None:
                check_tensor(value, name)
        dim = check_int(dim, "dim")
        if not -x.dim() <= dim < x.dim() or x.dim() < 2:
            raise ValueError(
                f"dim={dim} is out of range for x of shape {tuple(x.shape)} (it needs a "
                "dimension to aggregate and a channel dimension after it)"
            )
        dim_size = check_dim_size(dim_size)
        if kwargs.get("plan") is not None:
            return nn.Module.__call__(self, x, index, ptr, dim_size, dim, **kwargs)
        return super().__call__(x, index, ptr, dim_size, dim, **kwargs)

    def forward(
        self,
        x: Tensor,
        index: Tensor | None = None,
        ptr: Tensor | None = None,
        dim_size: int | None = None,
        dim: int = -2,
        max_num_elements: int | None = None,
        plan: SegmentPlan | None = None,
    ) -> Tensor:
        """Aggregate ``x`` along ``dim`` by ``index`` / ``ptr`` / ``plan`` (PyG's convention).

        ``max_num_elements`` is accepted for PyG compatibility and ignored: nothing is padded.
        Under ``torch.compile`` this runs :meth:`traced_forward` instead.
        """
        if torch.compiler.is_compiling():
            return self.traced_forward(x, index, ptr, dim_size, dim, plan)
        return self._forward_grouped(x, index, ptr, dim_size, dim, plan)

    def _forward_grouped(self, x, index, ptr, dim_size, dim, plan) -> Tensor:
        groups = self.group(x, index, ptr, dim_size, dim, plan, self.shuffle and self.training)
        return self.aggregate_groups(groups).movedim(0, dim)

    def traced_forward(
        self,
        x: Tensor,
        index: Tensor | None,
        ptr: Tensor | None,
        dim_size: int | None,
        dim: int,
        plan: SegmentPlan | None,
    ) -> Tensor:
        """The forward under ``torch.compile``.

        By default the whole aggregation runs eagerly, behind one graph break: regrouping by
        node depends on the values of the index (a sort, degree-dependent runs and levels),
        and tracing it would break the graph at every such step and recompile for every new
        graph, which costs more than compiling saves (the arithmetic already runs in a few
        large kernels). Subclasses whose reduction traces (the exactly associative monoids'
        one-step reductions) override this; the layers around the aggregation compile either
        way.
        """
        return self._forward_eagerly(x, index, ptr, dim_size, dim, plan)

    @torch.compiler.disable
    def _forward_eagerly(self, x, index, ptr, dim_size, dim, plan) -> Tensor:
        return self._forward_grouped(x, index, ptr, dim_size, dim, plan)

    def group(
        self,
        x: Tensor,
        index: Tensor | None = None,
        ptr: Tensor | None = None,
        dim_size: int | None = None,
        dim: int = -2,
        plan: SegmentPlan | None = None,
        shuffle: bool = False,
    ) -> Neighbourhoods:
        """Check ``x`` against this module and regroup its rows by node: the start of
        :meth:`forward` and of any other reduction a subclass offers."""
        self._check_channels(x, dim)
        return group_neighbourhoods(x, index, ptr, dim_size, dim, plan=plan, shuffle=shuffle)
