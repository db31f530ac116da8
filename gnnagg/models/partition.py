r"""Partitioned meshes: ``P`` sub-meshes, each the nodes one part owns (its *core*) plus a *halo*
that covers a model's receptive field, for training on sub-meshes and stitched inference.

A node's output after ``num_layers`` layers depends only on the nodes its layers can reach:

* a :class:`~gnnagg.models.GraphTransformer` with mask :math:`\mathcal M`: with
  :math:`S_0` the core and :math:`S_{l+1} = S_l \cup \{j : (i, j) \in \mathcal M,\ i \in
  S_l\}` (the keys the rows of :math:`S_l` attend), the halo is :math:`S_L \setminus S_0`.
  The mask is built once on the whole mesh and each sub-mesh attends with its restriction to
  :math:`S_L`, so every row of :math:`S_{L-1}` keeps all its keys, and by induction the
  core's outputs equal the whole mesh's;
* a :class:`~gnnagg.models.MeshGraphNet` with ``num_layers`` message-passing steps: the same
  with the edges (a receiver reaches its senders), on the sub-graph induced by :math:`S_L`.

Stitched inference -- each sub-mesh predicts its core, the cores are scattered back -- is then
exact (up to floating-point summation order) for masks made of :func:`~gnnagg.attention.
adjacency`, :func:`~gnnagg.attention.khop` and :func:`~gnnagg.attention.dilated_window` and
their unions and intersections. Two masks change that:

* :func:`~gnnagg.attention.global_tokens` attend, and are attended by, every node, so their
  reach is the whole mesh; the halo follows node-to-node pairs only and each sub-mesh has its
  own tokens, which see only the sub-mesh. One layer is still exact (the tokens enter it as
  their learned embeddings); from two layers on, stitched inference is an approximation
  (:attr:`MeshPartition.exact` is false);
* :func:`~gnnagg.attention.random_jumps` drawn once on the whole mesh (a built
  :class:`~gnnagg.attention.MaskIndex` passed as ``mask``) keep exactness, but a jump's far end
  joins the halo, which grows with the ratio and depth, towards the whole mesh. A model that
  redraws its jumps at every call sees other jumps per sub-mesh: the same distribution, not
  the same draw.

Partitioners (``method``): ``"metis"`` (METIS's multilevel k-way partitioning through
`pymetis <https://pypi.org/project/pymetis/>`_, an optional dependency: it minimises the edge
cut, hence the halo), ``"rcb"`` (recursive coordinate bisection of ``pos``: split the longest
side of the bounding box at the node-count quantile, recursively), ``"morton"`` (``P``
contiguous runs of the Z-order of ``pos``), ``"rcm"`` (contiguous runs of the reverse
Cuthill--McKee order, for graphs without coordinates). ``"auto"`` takes ``"metis"`` when
pymetis is importable, else ``"rcb"`` with ``pos``, else ``"rcm"``; every method but METIS
needs only torch (and scipy for ``"rcm"``) and is deterministic. :attr:`MeshPartition.method`
records which one ran.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_count, check_edge_index, check_tensor
from ..attention import Mask, MaskIndex, morton_codes, reverse_cuthill_mckee
from .graph_transformer import GraphTransformer
from .meshgraphnet import MeshGraphNet

__all__ = [
    "PARTITION_METHODS",
    "MeshPartition",
    "SubMesh",
    "edge_reach",
    "mask_reach",
    "partition_mesh",
    "partition_nodes",
    "restrict_mask",
    "stitched_forward",
]

PARTITION_METHODS = ("auto", "metis", "rcb", "morton", "rcm")


def partition_nodes(
    edge_index: Tensor,
    num_parts: int,
    *,
    num_nodes: int | None = None,
    pos: Tensor | None = None,
    method: str = "auto",
) -> tuple[Tensor, str]:
    """The part of every node, ``[N]`` int64 in ``[0, num_parts)``, and the method that made it
    (``method`` with ``"auto"`` resolved; see the module's docstring). Parts hold
    ``N / num_parts`` nodes (rounded) with every method but ``"metis"``, which balances them
    within METIS's tolerance."""
    num_nodes, edge_index, pos = _check_graph(edge_index, num_nodes, pos)
    num_parts = _check_parts(num_parts, num_nodes)
    method = _resolve_method(method, pos)
    if num_parts == 1:
        return torch.zeros(num_nodes, dtype=torch.int64, device=edge_index.device), method
    if method == "metis":
        part = _metis(edge_index, num_nodes, num_parts)
    elif method == "rcb":
        part = _bisect(pos.detach().to(torch.float64), num_parts)
    else:
        if method == "morton":
            order = torch.sort(morton_codes(pos), stable=True).indices
        else:
            order = reverse_cuthill_mckee(edge_index, num_nodes)
        part = torch.empty(num_nodes, dtype=torch.int64, device=order.device)
        part[order] = torch.arange(num_nodes, device=order.device) * num_parts // num_nodes
    return part.to(edge_index.device), method


def _resolve_method(method: object, pos: Tensor | None) -> str:
    if not isinstance(method, str) or method not in PARTITION_METHODS:
        raise ValueError(f"method must be one of {PARTITION_METHODS}, got {method!r}")
    if method == "auto":
        if importlib.util.find_spec("pymetis") is not None:
            return "metis"
        return "rcb" if pos is not None else "rcm"
    if method in ("rcb", "morton") and pos is None:
        raise ValueError(f"method={method!r} splits by coordinates: pass pos=[num_nodes, d]")
    if method == "metis" and importlib.util.find_spec("pymetis") is None:
        raise ImportError("method='metis' needs pymetis (pip install pymetis); or use 'rcb'")
    return method


def _metis(edge_index: Tensor, num_nodes: int, num_parts: int) -> Tensor:
    import numpy as np
    import pymetis

    # METIS wants a symmetric adjacency without self-loops, as CSR.
    src, dst = edge_index.cpu()
    keep = src != dst
    both = torch.cat([torch.stack([src[keep], dst[keep]]), torch.stack([dst[keep], src[keep]])], 1)
    keys = torch.unique(both[0] * num_nodes + both[1])
    rows, cols = keys // num_nodes, keys % num_nodes
    xadj = torch.zeros(num_nodes + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(rows, minlength=num_nodes), 0, out=xadj[1:])
    options = pymetis.Options(seed=0)
    if hasattr(pymetis, "CSRAdjacency"):  # pymetis >= 2025.2; xadj/adjncy before it
        graph = {"adjacency": pymetis.CSRAdjacency(xadj.numpy(), cols.numpy())}
    else:
        graph = {"xadj": xadj.numpy(), "adjncy": cols.numpy()}
    membership = pymetis.part_graph(num_parts, **graph, options=options)[1]
    return torch.from_numpy(np.asarray(membership, dtype=np.int64))


def _bisect(pos: Tensor, num_parts: int) -> Tensor:
    """Recursive coordinate bisection: parts ``[first, first + count)`` of ``nodes`` split the
    longest side of their bounding box at the quantile ``left / count`` (ties broken by node
    id, so the result is deterministic)."""
    part = torch.empty(pos.size(0), dtype=torch.int64, device=pos.device)
    stack = [(torch.arange(pos.size(0), device=pos.device), 0, num_parts)]
    while stack:
        nodes, first, count = stack.pop()
        if count == 1:
            part[nodes] = first
            continue
        points = pos[nodes]
        axis = int(torch.argmax(points.amax(0) - points.amin(0)))
        order = nodes[torch.sort(points[:, axis], stable=True).indices]
        left = count // 2
        cut = round(nodes.numel() * left / count)
        stack.append((order[:cut], first, left))
        stack.append((order[cut:], first + left, count - left))
    return part


def _reach(queries: Tensor, keys: Tensor, start: Tensor, steps: int) -> Tensor:
    """``start`` (``[N]`` bool) grown ``steps`` times by the keys of its queries."""
    reached = start.clone()
    for _ in range(steps):
        grown = reached.clone()
        grown[keys[reached[queries]]] = True
        if torch.equal(grown, reached):
            break
        reached = grown
    return reached


def mask_reach(mask_index: MaskIndex, nodes: Tensor, num_layers: int) -> Tensor:
    """``[N]`` bool: the nodes whose values ``num_layers`` attention layers with ``mask_index``
    (one graph) carry to ``nodes`` (``[N]`` bool or node ids), ``nodes`` included. Global
    tokens are not followed (they would reach every node; see the module's docstring)."""
    _check_single_graph(mask_index)
    num_layers = check_count(num_layers, "num_layers")
    start = _node_set(nodes, mask_index.num_nodes, mask_index.device)
    node_of_row = torch.full((mask_index.num_rows,), -1, dtype=torch.int64,
                             device=mask_index.device)
    node_of_row[mask_index.node_rows] = torch.arange(mask_index.num_nodes,
                                                     device=mask_index.device)
    queries, keys = node_of_row[mask_index.row()], node_of_row[mask_index.col]
    both = (queries >= 0) & (keys >= 0)
    return _reach(queries[both], keys[both], start, num_layers)


def edge_reach(edge_index: Tensor, nodes: Tensor, num_layers: int,
               num_nodes: int | None = None) -> Tensor:
    """``[N]`` bool: the nodes that ``num_layers`` message-passing steps over ``edge_index``
    (``source -> target``) carry to ``nodes`` (``[N]`` bool or node ids), ``nodes`` included."""
    num_nodes, edge_index, _ = _check_graph(edge_index, num_nodes, None)
    num_layers = check_count(num_layers, "num_layers")
    start = _node_set(nodes, num_nodes, edge_index.device)
    return _reach(edge_index[1], edge_index[0], start, num_layers)


def restrict_mask(mask_index: MaskIndex, nodes: Tensor) -> MaskIndex:
    """The pairs of ``mask_index`` (one graph) between ``nodes`` (node ids, in the order the
    sub-graph numbers them) and its global tokens, as a :class:`~gnnagg.attention.MaskIndex`
    of ``len(nodes)`` nodes: the sub-graph's tokens first, then node ``r`` of the sub-graph
    at row ``tokens + r``."""
    _check_single_graph(mask_index)
    device = mask_index.device
    nodes = _node_ids(nodes, mask_index.num_nodes, device)
    if torch.unique(nodes).numel() != nodes.numel():
        raise ValueError("nodes: ids repeat")
    tokens = mask_index.tokens_per_graph
    n = nodes.numel()
    num_rows = tokens + n
    new_row = torch.full((mask_index.num_rows,), -1, dtype=torch.int64, device=device)
    new_row[mask_index.token_rows.reshape(-1)] = torch.arange(tokens, device=device)
    new_row[mask_index.node_rows[nodes]] = tokens + torch.arange(n, device=device)
    queries, keys = new_row[mask_index.row()], new_row[mask_index.col]
    both = (queries >= 0) & (keys >= 0)
    pairs = torch.sort(queries[both] * max(num_rows, 1) + keys[both]).values
    rows = torch.div(pairs, max(num_rows, 1), rounding_mode="floor")
    rowptr = torch.zeros(num_rows + 1, dtype=torch.int64, device=device)
    torch.cumsum(torch.bincount(rows, minlength=num_rows), 0, out=rowptr[1:])
    return MaskIndex(
        rowptr,
        pairs - rows * num_rows,
        num_nodes=n,
        num_graphs=1,
        tokens_per_graph=tokens,
        node_rows=tokens + torch.arange(n, device=device),
        token_rows=torch.arange(tokens, device=device).view(1, tokens),
        row_graph=torch.zeros(num_rows, dtype=torch.int64, device=device),
        pos=None if mask_index.pos is None else mask_index.pos[nodes],
        expression=mask_index.expression,
    )


@dataclass(frozen=True, eq=False)
class SubMesh:
    """One part of a :class:`MeshPartition`.

    Attributes:
        nodes: ``[n]`` the whole mesh's ids of the sub-mesh's nodes: the core first, then the
            halo (each in increasing order); sub-mesh node ``r`` is mesh node ``nodes[r]``.
        num_core: how many of ``nodes`` are the core (the nodes this part predicts).
        edge_index: ``[2, e]`` the mesh's edges between ``nodes``, renumbered into the
            sub-mesh (in the mesh's edge order).
        edge_ids: ``[e]`` their positions in the mesh's ``edge_index`` (to slice edge
            features).
        mask_index: the whole mesh's mask restricted to ``nodes``
            (:func:`restrict_mask`), or ``None`` for a partition by edges.
    """

    nodes: Tensor
    num_core: int
    edge_index: Tensor
    edge_ids: Tensor
    mask_index: MaskIndex | None

    @property
    def core(self) -> Tensor:
        """``[num_core]`` the mesh ids of the core."""
        return self.nodes[: self.num_core]

    @property
    def halo(self) -> Tensor:
        """The mesh ids of the halo."""
        return self.nodes[self.num_core :]

    @property
    def num_nodes(self) -> int:
        return self.nodes.numel()

    def __repr__(self) -> str:
        return (f"SubMesh(core={self.num_core}, halo={self.num_nodes - self.num_core}, "
                f"edges={self.edge_ids.numel()})")


@dataclass(frozen=True, eq=False)
class MeshPartition:
    """A mesh split into sub-meshes (:func:`partition_mesh`).

    Attributes:
        parts: the :class:`SubMesh` of every part (a part may have an empty core with
            ``"metis"`` on tiny meshes; :meth:`apply` skips it).
        assignment: ``[N]`` the part owning every node.
        method: the partitioner that ran (``"metis"``, ``"rcb"``, ``"morton"``, ``"rcm"``).
        num_layers: the depth the halos cover.
        reach: ``"edges"`` (message passing) or the ``repr`` of the mask followed.
        exact: whether stitched inference reproduces whole-mesh inference (false with
            global tokens from two layers on).
    """

    parts: tuple[SubMesh, ...]
    assignment: Tensor
    method: str
    num_layers: int
    reach: str
    exact: bool

    @property
    def num_parts(self) -> int:
        return len(self.parts)

    @property
    def num_nodes(self) -> int:
        return self.assignment.numel()

    def halo_fraction(self) -> float:
        """Halo nodes over all parts, as a fraction of the mesh's nodes: the extra work of
        running the parts instead of the whole mesh."""
        total = sum(part.num_nodes for part in self.parts)
        return (total - self.num_nodes) / max(self.num_nodes, 1)

    def stitch(self, outputs: Sequence[Tensor]) -> Tensor:
        """The mesh's ``[N, ...]`` from the outputs of every part (``[n, ...]`` over the
        sub-mesh's nodes or ``[num_core, ...]`` over its core, in the part's order): each node
        takes its own part's value."""
        if len(outputs) != self.num_parts:
            raise ValueError(f"outputs: expected {self.num_parts} tensors (one per part), "
                             f"got {len(outputs)}")
        out = None
        for index, (part, value) in enumerate(zip(self.parts, outputs)):
            value = check_tensor(value, f"outputs[{index}]")
            if value.dim() == 0 or value.size(0) not in (part.num_nodes, part.num_core):
                raise ValueError(
                    f"outputs[{index}]: expected {part.num_nodes} (sub-mesh) or {part.num_core} "
                    f"(core) rows, got shape {tuple(value.shape)}"
                )
            if out is None:
                out = value.new_zeros((self.num_nodes, *value.shape[1:]))
            elif value.shape[1:] != out.shape[1:]:
                raise ValueError(f"outputs[{index}]: shape {tuple(value.shape)} does not match "
                                 f"the other parts' {tuple(out.shape[1:])}")
            core = part.core.to(value.device)
            out = out.index_copy(0, core, value[: part.num_core])
        return out

    def apply(self, function: Callable[[SubMesh], Tensor]) -> Tensor:
        """``stitch`` of ``function(part)`` over the parts with a core (empty cores get no
        call and an empty output)."""
        outputs, template = [], None
        for part in self.parts:
            if part.num_core == 0:
                outputs.append(None)
                continue
            outputs.append(function(part))
            template = outputs[-1] if template is None else template
        if template is None:
            raise ValueError("the partition has no nodes")
        return self.stitch([template.new_zeros((0, *template.shape[1:])) if o is None else o
                            for o in outputs])


def partition_mesh(
    edge_index: Tensor,
    num_parts: int,
    *,
    num_layers: int,
    mask: Mask | MaskIndex | None = None,
    num_nodes: int | None = None,
    pos: Tensor | None = None,
    method: str = "auto",
    generator: torch.Generator | None = None,
) -> MeshPartition:
    """Split one mesh into ``num_parts`` sub-meshes whose halos cover ``num_layers`` layers.

    Args:
        edge_index: ``[2, E]`` the mesh's edges ``source -> target`` (PyG's convention).
        num_parts: ``P``, at least 1 and at most the number of nodes.
        num_layers: the model's depth ``L`` (attention blocks or message-passing steps).
        mask: ``None`` for message passing over ``edge_index`` (a
            :class:`~gnnagg.models.MeshGraphNet`); a :class:`~gnnagg.attention.Mask` (built
            here on the whole mesh, with ``pos`` and ``generator``) or a built
            :class:`~gnnagg.attention.MaskIndex` of the whole mesh for a
            :class:`~gnnagg.models.GraphTransformer`; each part gets its restriction.
        num_nodes: ``N``; default from ``pos`` or ``edge_index``.
        pos: ``[N, d]`` node coordinates (for ``"rcb"``/``"morton"`` and masks that need them).
        method: the partitioner (see the module's docstring).
        generator: draws a mask's random jumps.

    Cost: the partitioner, plus ``O(P · L · nnz)`` for the halos (``nnz`` the mask's pairs or
    the edges) and one mask build on the whole mesh.
    """
    num_nodes, edge_index, pos = _check_graph(edge_index, num_nodes, pos)
    num_parts = _check_parts(num_parts, num_nodes)
    num_layers = check_count(num_layers, "num_layers")
    if isinstance(mask, Mask):
        mask = mask.build(edge_index, num_nodes=num_nodes, pos=pos, generator=generator)
    elif mask is not None and not isinstance(mask, MaskIndex):
        raise TypeError(f"mask must be a Mask, a MaskIndex or None, got {type(mask).__name__}")
    if mask is not None:
        _check_single_graph(mask)
        if mask.num_nodes != num_nodes:
            raise ValueError(f"mask: built for {mask.num_nodes} nodes, the mesh has {num_nodes}")
        mask = mask.to(edge_index.device)
    assignment, method = partition_nodes(edge_index, num_parts, num_nodes=num_nodes, pos=pos,
                                         method=method)
    device = edge_index.device
    parts = []
    for index in range(num_parts):
        core = assignment == index
        if mask is None:
            reached = _reach(edge_index[1], edge_index[0], core, num_layers)
        else:
            reached = mask_reach(mask, core, num_layers)
        nodes = torch.cat([core.nonzero().view(-1), (reached & ~core).nonzero().view(-1)])
        local = torch.full((num_nodes,), -1, dtype=torch.int64, device=device)
        local[nodes] = torch.arange(nodes.numel(), device=device)
        edge_ids = (reached[edge_index[0]] & reached[edge_index[1]]).nonzero().view(-1)
        parts.append(SubMesh(
            nodes=nodes,
            num_core=int(core.sum()),
            edge_index=local[edge_index[:, edge_ids]],
            edge_ids=edge_ids,
            mask_index=None if mask is None else restrict_mask(mask, nodes),
        ))
    tokens = 0 if mask is None else mask.tokens_per_graph
    return MeshPartition(
        parts=tuple(parts),
        assignment=assignment,
        method=method,
        num_layers=num_layers,
        reach="edges" if mask is None else (mask.expression or "mask"),
        exact=tokens == 0 or num_layers <= 1 or num_parts == 1,
    )


def stitched_forward(
    model: GraphTransformer | MeshGraphNet,
    partition: MeshPartition,
    x: Tensor,
    *,
    edge_attr: Tensor | None = None,
    pos: Tensor | None = None,
) -> Tensor:
    """The output ``[N, out_channels]`` of ``model`` on the whole mesh, computed part by part:
    each sub-mesh's core, stitched (:meth:`MeshPartition.stitch`).

    A :class:`~gnnagg.models.GraphTransformer` attends with each part's restricted mask (the
    partition must follow ``model.mask``); a :class:`~gnnagg.models.MeshGraphNet` runs on each
    part's edges with ``edge_attr`` ``[E, edge_dim]`` sliced, or the edge features of ``pos``
    (the partition must follow the edges). The halos must cover the model's depth. Equal to
    ``model(x, ...)`` up to summation order when :attr:`MeshPartition.exact`.
    """
    if not isinstance(partition, MeshPartition):
        raise TypeError(f"partition must be a MeshPartition, got {type(partition).__name__}")
    x = check_tensor(x, "x")
    if x.dim() != 2 or x.size(0) != partition.num_nodes:
        raise ValueError(f"x must be [num_nodes={partition.num_nodes}, C], got shape "
                         f"{tuple(x.shape)}")
    if isinstance(model, GraphTransformer):
        depth, wanted = len(model.blocks), repr(model.mask)
        if partition.reach != wanted:
            raise ValueError(f"partition: its halos follow {partition.reach!r} but the model "
                             f"attends {wanted!r}; partition_mesh(..., mask=model.mask)")

        def run(part: SubMesh) -> Tensor:
            mask_index = part.mask_index
            if mask_index.device != x.device:
                mask_index = mask_index.to(x.device)
            return model(x[part.nodes.to(x.device)], mask_index=mask_index)
    elif isinstance(model, MeshGraphNet):
        depth = len(model.processor)
        if partition.reach != "edges":
            raise ValueError(f"partition: its halos follow {partition.reach!r}; a MeshGraphNet "
                             f"passes messages along the edges: partition_mesh(..., mask=None)")
        if edge_attr is None and pos is None:
            raise ValueError("pass edge_attr, or pos to compute mesh_edge_features")

        def run(part: SubMesh) -> Tensor:
            nodes, ids = part.nodes.to(x.device), part.edge_ids.to(x.device)
            return model(
                x[nodes], part.edge_index.to(x.device),
                edge_attr=None if edge_attr is None else edge_attr[ids],
                pos=None if pos is None else pos[nodes],
            )
    else:
        raise TypeError(f"model must be a GraphTransformer or a MeshGraphNet, got "
                        f"{type(model).__name__}; use partition.apply for other models")
    if depth > partition.num_layers:
        raise ValueError(f"partition: its halos cover num_layers={partition.num_layers} but the "
                         f"model has {depth} layers")
    return partition.apply(run)


# ---------------------------------------------------------------------- checks


def _check_graph(edge_index: object, num_nodes: object, pos: object):
    edge_index = check_tensor(edge_index, "edge_index")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must be [2, num_edges], got shape {tuple(edge_index.shape)}")
    if num_nodes is None:
        if isinstance(pos, Tensor):
            num_nodes = pos.size(0)
        else:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
    num_nodes = check_count(num_nodes, "num_nodes")
    edge_index = check_edge_index(edge_index, "edge_index", num_nodes).to(torch.int64)
    if pos is not None:
        pos = check_tensor(pos, "pos")
        if pos.dim() != 2 or pos.size(0) != num_nodes or not pos.is_floating_point():
            raise ValueError(f"pos must be a floating-point [num_nodes={num_nodes}, d] tensor, "
                             f"got {pos.dtype} of shape {tuple(pos.shape)}")
        if not bool(torch.isfinite(pos).all()):
            raise ValueError("pos: coordinates must be finite")
        pos = pos.to(edge_index.device)
    return num_nodes, edge_index, pos


def _check_parts(num_parts: object, num_nodes: int) -> int:
    num_parts = check_count(num_parts, "num_parts")
    if not 1 <= num_parts <= max(num_nodes, 1):
        raise ValueError(f"num_parts must lie in [1, num_nodes={num_nodes}], got {num_parts}")
    return num_parts


def _check_single_graph(mask_index: object) -> None:
    if not isinstance(mask_index, MaskIndex):
        raise TypeError(f"mask_index must be a MaskIndex, got {type(mask_index).__name__}")
    if mask_index.num_graphs != 1:
        raise ValueError(f"mask_index: built for {mask_index.num_graphs} graphs; partition one "
                         f"mesh at a time")


def _node_set(nodes: object, num_nodes: int, device: torch.device) -> Tensor:
    if isinstance(nodes, Tensor) and nodes.dtype == torch.bool:
        if nodes.shape != (num_nodes,):
            raise ValueError(f"nodes: a bool mask must have shape [{num_nodes}], got "
                             f"{tuple(nodes.shape)}")
        return nodes.to(device)
    flags = torch.zeros(num_nodes, dtype=torch.bool, device=device)
    flags[_node_ids(nodes, num_nodes, device)] = True
    return flags


def _node_ids(nodes: object, num_nodes: int, device: torch.device) -> Tensor:
    if not isinstance(nodes, Tensor) or nodes.dim() != 1 or nodes.dtype not in (torch.int32,
                                                                                 torch.int64):
        raise TypeError("nodes must be a 1-D tensor of node ids (or an [N] bool mask)")
    nodes = nodes.to(device=device, dtype=torch.int64)
    if nodes.numel() and (int(nodes.min()) < 0 or int(nodes.max()) >= num_nodes):
        raise ValueError(f"nodes: ids outside [0, num_nodes={num_nodes})")
    return nodes
