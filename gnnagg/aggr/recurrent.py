"""Recurrent neighbourhood aggregators (GRU, LSTM) without padding, regularised towards invariance.

The baseline of the LCM paper (Cohen-Karlik et al., 2020, "Regularizing towards permutation
invariance in recurrent models"): each node reads its messages as a sequence with a GRU or LSTM,
and a regulariser penalises the non-commutativity of the state transition at states the model
reaches, so that the learnt function generalises to larger neighbourhoods.

Unlike PyG's ``GRUAggregation``/``LSTMAggregation``, which pad every node to the largest degree
(``[N, D_max, F]``) and run ``D_max`` steps for every node, node ``v`` here runs exactly ``d(v)``
steps: its output never depends on other nodes' degrees, memory is ``O(E·F)`` and work ``O(E)``.
The messages are laid out as a :class:`~torch.nn.utils.rnn.PackedSequence` (degree bucketing:
nodes by degree descending, step ``t`` holds the nodes with degree ``> t``), built without any
``[N, D_max]`` buffer; every step touches only the nodes still running. Sequential steps = the
maximum degree, inherent to a recurrence.

Conventions:

* Reading order: in eval mode (or with ``shuffle=False``) each neighbourhood is read in edge order,
  i.e. the order of its messages along ``dim``; with ``shuffle=True`` a fresh uniformly random
  order is drawn for every forward in training mode.
* Messages ``[E, *rest, in_channels]`` with extra dimensions (GATConv's heads) run one sequence per
  node and per entry of ``rest``, with shared weights; the output is ``[N, *rest, output_size]``
  (``out_channels``, or ``proj_size``, times the number of directions).
* ``nn.GRU``/``nn.LSTM`` arguments (``num_layers``, ``dropout``, ``bidirectional``, ``proj_size``)
  are accepted as PyG forwards them; the output is the top layer's output at the node's last
  message, as PyG's ``rnn(x)[0][:, -1]``.
* Nodes with no messages get the top layer's initial state: zeros, or learnt vectors with
  ``learn_initial_state=True``.
* Execution: on CUDA, one ATen ``gru``/``lstm`` (cuDNN) call runs the packed batch; on the
  CPU, where ATen's backward of a packed RNN is ``O(D_max·E)``, one dense call per run of steps
  with the same number of running nodes does, carrying every layer's state across runs; a
  bidirectional RNN runs there layer by layer, its reverse direction on rows permuted so that
  each sequence reads backwards (``backend=`` overrides the choice). cuDNN
  computes in TF32 on Ampere and later unless ``torch.backends.cudnn.allow_tf32`` is off
  (PyTorch's default is on): about 1e-4 from float32.
* Dtypes: the recurrence runs in the dtype of the module's parameters. Lower-precision messages
  (float16/bfloat16 into a float32 module) are upcast and the output is cast back to their dtype;
  messages more precise than the parameters are a ``TypeError`` rather than silently truncated.

The packed layout and the RNN calls are in :mod:`gnnagg.aggr.sequences`, the regulariser's
sampling in :mod:`gnnagg.aggr.permutation`; this module holds the modules.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn.parameter import UninitializedParameter, is_lazy
from torch.nn.utils.rnn import PackedSequence

from .._checks import (
    check_allocation,
    check_bool,
    check_choice,
    check_count,
    check_finite,
    check_positive,
)
from .base import LAZY, NeighbourhoodAggregation, Neighbourhoods, check_in_channels
from .permutation import (
    RecordedForward,
    commutator_loss,
    hidden_before,
    lstm_cells_before,
    sample_steps,
)
from .sequences import (
    State,
    pack_neighbourhoods,
    rnn_weights,
    run_layer_by_layer,
    run_packed,
    run_segments,
)

__all__ = [
    "GRUAggregation",
    "LSTMAggregation",
    "RecurrentAggregation",
    "total_permutation_loss",
]

#: The values of ``backend=``: which RNN calls run the packed neighbourhoods.
_BACKENDS = ("auto", "packed", "segments")


def _check_rnn_kwargs(kwargs: dict) -> dict:
    """Refuse the ``nn.GRU``/``nn.LSTM`` arguments that the aggregation sets itself, and check
    the rest with errors that name them (``nn.RNNBase`` lets ``bidirectional="yes"`` through
    and reports ``num_layers=2.5`` without naming it); returns them checked."""
    for own, instead in (("input_size", "in_channels"), ("hidden_size", "out_channels")):
        if own in kwargs:
            raise TypeError(f"{own} is given by {instead}; do not pass it as a keyword")
    if "batch_first" in kwargs:
        raise TypeError(
            "batch_first cannot be set: the aggregation lays out each neighbourhood as a "
            "sequence itself (PyG's aggregation refuses it too)"
        )
    checked = dict(kwargs)
    if "num_layers" in kwargs:
        checked["num_layers"] = check_positive(kwargs["num_layers"], "num_layers")
    if "proj_size" in kwargs:
        checked["proj_size"] = check_count(kwargs["proj_size"], "proj_size")
    if "bidirectional" in kwargs:
        checked["bidirectional"] = check_bool(kwargs["bidirectional"], "bidirectional")
    if "dropout" in kwargs:
        checked["dropout"] = check_finite(kwargs["dropout"], "dropout", minimum=0, maximum=1)
    return checked


class RecurrentAggregation(NeighbourhoodAggregation):
    """Shared machinery of :class:`GRUAggregation` and :class:`LSTMAggregation`.

    Subclasses set ``rnn_class`` (``nn.GRU`` or ``nn.LSTM``) and the name PyG gives it
    (``pyg_rnn_name``, so that PyG checkpoints load), and implement :meth:`transition` and, for
    states not recoverable from the packed output, :meth:`states_before`.
    """

    rnn_class: ClassVar[type[nn.RNNBase]]
    pyg_rnn_name: ClassVar[str]
    num_state_parts: ClassVar[int] = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shuffle: bool = False,
        learn_initial_state: bool = False,
        bias: bool = True,
        backend: str = "auto",
        **rnn_kwargs,
    ) -> None:
        backend = check_choice(backend, "backend", _BACKENDS)
        in_channels = check_in_channels(in_channels)
        out_channels = check_positive(out_channels, "out_channels")
        rnn_kwargs = _check_rnn_kwargs(rnn_kwargs)
        super().__init__(shuffle=shuffle)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.learn_initial_state = check_bool(learn_initial_state, "learn_initial_state")
        self.backend = backend
        bias = check_bool(bias, "bias")
        # Four gates at most, of every layer and direction (the first layer's inputs included).
        layers = rnn_kwargs.get("num_layers", 1) * (2 if rnn_kwargs.get("bidirectional") else 1)
        width = max(in_channels, 1)  # a lazy in_channels is sized on first use
        check_allocation(4 * layers * (width + 2 * out_channels + 2) * out_channels * 4,
                         f"in_channels={in_channels}, out_channels={out_channels}: the RNN's "
                         "parameters", "cpu")
        lazy = in_channels == LAZY
        self.rnn = self.rnn_class(1 if lazy else in_channels, out_channels, bias=bias, **rnn_kwargs)
        rnn = self.rnn
        self.num_directions = 2 if rnn.bidirectional else 1
        hidden_width = getattr(rnn, "proj_size", 0) or out_channels
        #: Width of the output: the top layer's ``h`` of every direction.
        self.output_size = self.num_directions * hidden_width
        if self.learn_initial_state:
            widths = (hidden_width, out_channels)[: self.num_state_parts]
            stacks = rnn.num_layers * self.num_directions
            # One vector per state part as for a single-layer cell; one row per layer and
            # direction otherwise (nn.GRU's h_0 layout).
            shapes = [(w,) if stacks == 1 else (stacks, w) for w in widths]
            self.initial_state = nn.ParameterList(
                nn.Parameter(rnn.weight_ih_l0.new_zeros(shape)) for shape in shapes
            )
        if lazy:
            # The first layer's input weights wait for the first messages (PyG's lazy style:
            # an uninitialised parameter follows .to() and loads from a state dict).
            for name in self._input_weight_names():
                weight = getattr(rnn, name)
                setattr(rnn, name, UninitializedParameter(device=weight.device, dtype=weight.dtype))
        self.reset_parameters()

    def _input_weight_names(self) -> list[str]:
        return [n for n in self.rnn._flat_weights_names if n.startswith("weight_ih_l0")]

    def _initialize_channels(self, in_channels: int) -> None:
        """Size the first layer's input weights for ``in_channels`` and initialise them as
        ``nn.GRU``/``nn.LSTM`` do."""
        for name in self._input_weight_names():
            weight = getattr(self.rnn, name)
            if is_lazy(weight):
                weight.materialize((weight_rows(self.rnn), int(in_channels)))
                with torch.no_grad():
                    weight.uniform_(-_init_bound(self.rnn), _init_bound(self.rnn))
        self.rnn.input_size = int(in_channels)
        super()._initialize_channels(in_channels)

    def reset_parameters(self) -> None:
        """Re-initialise the recurrent weights (PyTorch's default) and zero the initial state."""
        bound = _init_bound(self.rnn)
        with torch.no_grad():
            for weight in self.rnn.parameters():
                if not is_lazy(weight):  # a lazy weight is initialised when it is sized
                    weight.uniform_(-bound, bound)
        if self.learn_initial_state:
            with torch.no_grad():
                for part in self.initial_state:
                    part.zero_()

    # -- forward ------------------------------------------------------------------------------
    def aggregate_groups(self, groups: Neighbourhoods) -> Tensor:
        """``[num_nodes, *rest, output_size]``: each node's top-layer output at its last
        message (as PyG's ``rnn(x)[0][:, -1]`` where PyG pads nothing)."""
        messages = groups.messages
        work = self.work_dtype(messages.dtype)
        rest = messages.shape[1:-1]
        entries = math.prod(rest)
        num_nodes = groups.num_nodes
        initial = self._initial_state(work, messages.device)
        # What a node without messages outputs: the top layer's initial h, every direction.
        idle_output = initial[0][-self.num_directions :].reshape(-1)
        record = torch.is_grad_enabled()
        if messages.shape[0] == 0 or entries == 0:
            self._store(None, record)
            out = idle_output.expand(num_nodes, *rest, self.output_size).clone()
            # messages is empty, so its sum is an exact 0 that keeps the output in the graph:
            # a backward through a batch without edges works as it does for a sum aggregation.
            return (out + messages.sum().to(work)).to(messages.dtype)

        packed = pack_neighbourhoods(groups)
        sequence = PackedSequence(packed.sequence.data.to(work), packed.sequence.batch_sizes)
        batch = packed.num_active * entries
        hx = tuple(part.unsqueeze(1).expand(-1, batch, -1).contiguous() for part in initial)
        layer_outputs: tuple[Tensor, ...] = ()
        stacked = self.rnn.num_layers > 1
        packed_call = self._runs_packed(messages.device)
        if self.num_directions == 2 or (record and stacked):
            # The regulariser of a stacked RNN needs every layer's states, which one call on
            # all layers does not return.
            output, last_h, layer_outputs = run_layer_by_layer(
                self.rnn, sequence, hx, packed, packed_call
            )
        elif packed_call:
            output, last_h = run_packed(self.rnn, sequence, hx, packed)
        else:
            sizes = sequence.batch_sizes.tolist()
            output, last_h = run_segments(
                self.rnn, sequence.data, sizes, hx, rnn_weights(self.rnn), record
            )
        last_h = last_h.reshape(packed.num_active, *rest, self.output_size)
        idle = idle_output.expand(num_nodes - packed.num_active, *rest, self.output_size)
        # Ranks put the nodes that ran first, so one gather restores node order.
        out = torch.cat([last_h, idle]).index_select(0, packed.rank)

        self._store(
            RecordedForward(
                inputs=sequence.data.detach(),
                outputs=output.detach(),
                lengths=packed.lengths,
                offsets=packed.offsets,
                initial=tuple(part.detach() for part in initial),
                layer_outputs=tuple(part.detach() for part in layer_outputs) or (output.detach(),),
            ),
            record,
        )
        return out.to(messages.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # PyG's GRUAggregation/LSTMAggregation hold the same nn.GRU/nn.LSTM under ``gru.`` /
        # ``lstm.``: their checkpoints load here (the weights mean the same; only PyG's padding
        # differs).
        theirs = f"{prefix}{self.pyg_rnn_name}."
        for key in [k for k in state_dict if k.startswith(theirs)]:
            state_dict[f"{prefix}rnn.{key[len(theirs) :]}"] = state_dict.pop(key)
        # A lazy aggregation learns its width from the checkpoint's input weights.
        loaded = state_dict.get(f"{prefix}rnn.weight_ih_l0")
        if self.in_channels == LAZY and isinstance(loaded, Tensor) and loaded.dim() == 2:
            for name in self._input_weight_names():
                getattr(self.rnn, name).materialize(loaded.shape)
            self.rnn.input_size = self.in_channels = int(loaded.shape[1])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _runs_packed(self, device: torch.device) -> bool:
        if self.backend == "auto":
            return device.type == "cuda" and torch.backends.cudnn.enabled
        return self.backend == "packed"

    def _initial_state(self, dtype: torch.dtype, device: torch.device) -> State:
        """Parts ``[layers·directions, H]`` (``h``, and ``c`` for the LSTM)."""
        stacks = self.rnn.num_layers * self.num_directions
        if self.learn_initial_state:
            return tuple(part.to(dtype).reshape(stacks, -1) for part in self.initial_state)
        widths = (self.output_size // self.num_directions, self.out_channels)
        return tuple(
            torch.zeros(stacks, width, dtype=dtype, device=device)
            for width in widths[: self.num_state_parts]
        )

    def _store(self, recorded: RecordedForward | None, record: bool) -> None:
        # (what was recorded, whether the forward ran without gradients), per thread.
        if record and recorded is None:
            recorded = RecordedForward(
                inputs=torch.empty(0, self.in_channels),
                outputs=torch.empty(0, self.out_channels),
                lengths=torch.empty(0, dtype=torch.long),
                offsets=torch.empty(0, dtype=torch.long),
                initial=(),
                layer_outputs=(),
            )
        self._last_forward.set((recorded if record else None, not record))

    @property
    def _last_recorded(self) -> RecordedForward | None:
        """What this thread's last forward with gradients recorded, or ``None``."""
        last = self._last_forward.get()
        return None if last is None else last[0]

    # -- regulariser --------------------------------------------------------------------------
    def transition(self, state: State, x: Tensor) -> State:
        """One step of the recurrence with the current weights: ``f(state, x)``."""
        raise NotImplementedError

    def states_before(self, recorded: RecordedForward, seq: Tensor, step: Tensor) -> State:
        """The state of packed sequence ``seq`` before it reads its message ``step``: every
        layer's ``h``, first layer first."""
        layers = range(self.rnn.num_layers)
        return tuple(hidden_before(recorded, seq, step, layer) for layer in layers)

    def sample_commutator_pairs(
        self, num_samples: int = 256, generator: torch.Generator | None = None
    ) -> tuple[State, Tensor, Tensor, Tensor, Tensor, Tensor] | None:
        """Draw the samples of :meth:`permutation_loss` from the last forward.

        Returns ``(state, x_i, x_j, seq, step, other)``: packed sequence ``seq`` (a node, or a
        node and head), the state it reached before reading its message ``step`` (= ``x_i``) and
        another of its messages ``other`` (= ``x_j``); or ``None`` when no neighbourhood has two
        messages. All tensors are detached.
        """
        num_samples = check_positive(num_samples, "num_samples")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if self.num_directions != 1:
            raise ValueError(
                f"{type(self).__name__}: the permutation regulariser is defined for the state "
                "transition of a recurrence read in one direction; this aggregation has "
                "bidirectional=True"
            )
        recorded = self._require_recorded()
        sampled = sample_steps(recorded, num_samples, generator)
        if sampled is None:
            return None
        seq, step, other = sampled
        with torch.no_grad():
            state = self.states_before(recorded, seq, step)
        x_i = recorded.inputs[recorded.offsets[step] + seq]
        x_j = recorded.inputs[recorded.offsets[other] + seq]
        return state, x_i, x_j, seq, step, other

    def permutation_loss(
        self, num_samples: int = 256, generator: torch.Generator | None = None
    ) -> Tensor:
        """The commutativity regulariser of Cohen-Karlik et al. at the last forward's states.

        ``L = (1/K) Σ_k ‖f(f(s_k, x_i), x_j) − f(f(s_k, x_j), x_i)‖²`` with ``f`` the cell
        transition under the current weights, summed over the hidden channels (and for the LSTM
        over both ``h`` and ``c``, since ``c`` carries the order into later steps). Sample ``k``:
        a step drawn uniformly among all steps of neighbourhoods with at least two messages
        (with replacement); ``s_k`` is the state reached just before that step (the initial
        state for step 0), ``x_i`` the message read there and ``x_j`` another message of the same
        neighbourhood, uniformly. States and messages are treated as fixed sample points
        (detached): the gradient reaches only the recurrent weights, so the loss cannot be
        lowered by making upstream messages alike. Returns a zero scalar when no neighbourhood
        had two messages.

        Raises ``RuntimeError`` before any forward, or when the last forward ran without
        gradients (``torch.no_grad``/``inference_mode``: nothing is recorded then, so inference
        holds no extra memory). A forward with gradients keeps its packed messages and states,
        detached (``E·R·(in + out)`` numbers), until the next forward replaces them.
        """
        sampled = self.sample_commutator_pairs(num_samples, generator)
        weight = self.rnn.weight_ih_l0
        if sampled is None:
            return weight.new_zeros(())
        state, x_i, x_j = sampled[:3]
        return commutator_loss(self.transition, state, x_i, x_j)

    def _require_recorded(self) -> RecordedForward:
        last = self._last_forward.get()
        if last is None or last[0] is None:
            if last is not None and last[1]:
                raise RuntimeError(
                    f"{type(self).__name__}.permutation_loss(): the last forward ran without "
                    "gradients (torch.no_grad), which records no states; run it with gradients "
                    "enabled"
                )
            raise RuntimeError(
                f"{type(self).__name__}.permutation_loss() samples states from the last forward "
                "pass in this thread; call the aggregation (or the model) first"
            )
        return last[0]

    def __repr__(self) -> str:
        rnn = self.rnn
        # The nn.GRU/nn.LSTM arguments that differ from their defaults.
        extra = "".join(
            f", {name}={value}"
            for name, value, default in (
                ("num_layers", rnn.num_layers, 1),
                ("dropout", rnn.dropout, 0.0),
                ("bidirectional", rnn.bidirectional, False),
                ("proj_size", getattr(rnn, "proj_size", 0), 0),
            )
            if value != default
        )
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
            f"shuffle={self.shuffle}, learn_initial_state={self.learn_initial_state}{extra})"
        )


class GRUAggregation(RecurrentAggregation):
    """GRU aggregation: node ``v`` reads its ``d(v)`` messages as a sequence of ``d(v)`` steps.

    A drop-in replacement for PyG's ``GRUAggregation`` without padding: the output is the hidden
    state after the node's last message (not after ``D_max`` padded steps), memory is ``O(E·F)``,
    any index order and ``ptr`` are accepted. Call :meth:`permutation_loss` after a forward for
    the commutativity regulariser.

    Args:
        in_channels: message channels (last dimension of ``x``), or ``-1`` to learn them
            from the first forward (as PyG's lazy modules: run one batch before building the
            optimiser).
        out_channels: hidden size; the output's last dimension.
        shuffle: read each neighbourhood in a fresh random order every forward in training mode
            (eval mode always reads in edge order).
        learn_initial_state: learn the initial hidden state (what nodes without messages get);
            otherwise it is zero.
        bias: use biases in the GRU (``nn.GRU``'s ``bias``).
        **rnn_kwargs: further ``nn.GRU`` arguments, as PyG forwards them: ``num_layers``,
            ``dropout`` (between layers, in training mode), ``bidirectional``, ``device``,
            ``dtype``. ``input_size``, ``hidden_size`` and ``batch_first`` are set by the
            aggregation and refused. The output has ``output_size`` channels:
            ``out_channels``, doubled when bidirectional. As in PyG it is the top layer's
            output at the node's last message, so with ``bidirectional=True`` its second half
            is the backward direction after reading the last message only.
            :meth:`permutation_loss` needs ``bidirectional=False``; with stacked layers the
            state it regularises is every layer's (``h``, and ``c`` for the LSTM).
        backend: ``"packed"``: one ``nn.GRU`` call on the packed batch (cuDNN on CUDA;
            its CPU backward is ``O(D_max·E)``); ``"segments"``: one dense ``nn.GRU`` call per
            run of steps with the same number of running nodes (at most ``sqrt(2E)`` calls,
            ``O(E)`` work); ``"auto"`` (default): ``"packed"`` on CUDA with cuDNN, else
            ``"segments"``. All give the same result up to rounding.
    """

    rnn_class = nn.GRU
    pyg_rnn_name = "gru"

    @property
    def gru(self) -> nn.GRU:
        """The ``nn.GRU`` under the name PyG's ``GRUAggregation`` gives it."""
        return self.rnn

    def transition(self, state: State, x: Tensor) -> State:
        """One step of every layer: layer ``l`` reads the new ``h`` of layer ``l - 1``."""
        hidden = []
        for layer, h in enumerate(state):
            x = torch.gru_cell(x, h, *rnn_weights(self.rnn, layer))
            hidden.append(x)
        return tuple(hidden)


class LSTMAggregation(RecurrentAggregation):
    """LSTM aggregation: node ``v`` reads its ``d(v)`` messages as a sequence of ``d(v)`` steps.

    A drop-in replacement for PyG's ``LSTMAggregation`` without padding; the output is the hidden
    state ``h`` after the node's last message. The state of the recurrence is ``(h, c)``; the
    regulariser penalises the commutator of both (see :meth:`permutation_loss`). Arguments as
    :class:`GRUAggregation`; ``learn_initial_state`` learns both ``h_0`` and ``c_0``, and
    ``nn.LSTM``'s ``proj_size`` is accepted too (``h`` and the output are then ``proj_size``
    wide per direction).
    """

    rnn_class = nn.LSTM
    pyg_rnn_name = "lstm"
    num_state_parts = 2

    @property
    def lstm(self) -> nn.LSTM:
        """The ``nn.LSTM`` under the name PyG's ``LSTMAggregation`` gives it."""
        return self.rnn

    def transition(self, state: State, x: Tensor) -> State:
        """One step of every layer; ``state`` is ``(h_1, ..., h_L, c_1, ..., c_L)``."""
        layers = self.rnn.num_layers
        hidden, cells = [], []
        for layer in range(layers):
            h, c = self._cell(layer, x, state[layer], state[layers + layer])
            hidden.append(h)
            cells.append(c)
            x = h
        return (*hidden, *cells)

    def _cell(self, layer: int, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        rnn = self.rnn
        if not rnn.proj_size:
            h, c = torch.lstm_cell(x, [h, c], *rnn_weights(self.rnn, layer))
            return h, c
        # torch.lstm_cell has no projection: the LSTM step written out, then h = W_hr · h.
        gates = self._gates(layer, x, h)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return (torch.sigmoid(o) * torch.tanh(c)) @ getattr(rnn, f"weight_hr_l{layer}").t(), c

    def _gates(self, layer: int, x: Tensor, h: Tensor) -> Tensor:
        rnn = self.rnn
        gates = x @ getattr(rnn, f"weight_ih_l{layer}").t()
        gates = gates + h @ getattr(rnn, f"weight_hh_l{layer}").t()
        if rnn.bias:
            gates = gates + getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}")
        return gates

    def states_before(self, recorded: RecordedForward, seq: Tensor, step: Tensor) -> State:
        """``(h_1, ..., h_L, c_1, ..., c_L)`` before step ``step`` of sequence ``seq`` (``c``
        recomputed from the recorded ``h``: :func:`~gnnagg.aggr.permutation.lstm_cells_before`)."""
        layers = self.rnn.num_layers
        hidden = [hidden_before(recorded, seq, step, layer) for layer in range(layers)]
        return (*hidden, *lstm_cells_before(recorded, seq, step, layers, self._gates))


def _init_bound(rnn: nn.RNNBase) -> float:
    # nn.RNNBase.reset_parameters: every weight uniform in +-1/sqrt(hidden_size).
    return 1.0 / math.sqrt(rnn.hidden_size) if rnn.hidden_size > 0 else 0.0


def weight_rows(rnn: nn.RNNBase) -> int:
    """Rows of a layer's input weight: the gates times the hidden size."""
    gates = {"LSTM": 4, "GRU": 3}.get(rnn.mode, 1)
    return gates * rnn.hidden_size


def total_permutation_loss(
    module: nn.Module, num_samples: int = 256, generator: torch.Generator | None = None
) -> Tensor:
    """Sum of :meth:`~RecurrentAggregation.permutation_loss` over every recurrent aggregator in
    ``module`` that recorded a forward.

    ``to_hetero`` copies an aggregator once per edge type, so the instance a user created is not
    the one that runs; this collects the copies. Raises ``RuntimeError`` when ``module`` holds no
    recurrent aggregator that recorded a forward.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    losses: list[Tensor] = []
    for child in module.modules():
        if isinstance(child, RecurrentAggregation) and child._last_recorded is not None:
            losses.append(child.permutation_loss(num_samples, generator))
    if not losses:
        raise RuntimeError(
            "total_permutation_loss(): no recurrent aggregator in the module recorded a forward "
            "with gradients enabled"
        )
    return torch.stack(losses).sum()
