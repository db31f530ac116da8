"""GraphTransformerConv against PyG's TransformerConv with the same weights: outputs, attention
weights and gradients for every argument combination and edge format; the mask only adds
pairs; lazy shapes, to_hetero and torch.compile."""

import itertools

import pytest
import torch
import torch._dynamo as dynamo
from torch_geometric import EdgeIndex
from torch_geometric.nn import Linear, TransformerConv, to_hetero
from torch_geometric.utils import add_self_loops, remove_self_loops, to_torch_csr_tensor

from gnnagg.attention import GraphTransformerConv, adjacency, global_tokens, khop

# Sparse adjacencies as PyG builds them (torch warns that CSR support is in beta).
pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
NUM_SRC, NUM_DST, IN, OUT, EDGE_DIM = 11, 9, 6, 5, 4


def graph(bipartite: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    num_src = NUM_SRC if bipartite else NUM_DST
    src = torch.randint(0, num_src, (40,), generator=generator)
    dst = torch.randint(0, NUM_DST, (40,), generator=generator)
    dst[:3] = 0  # one target with several edges, parallel ones included
    src[:2] = 1
    x_src = torch.randn(num_src, IN + 1 if bipartite else IN, generator=generator)
    x_dst = torch.randn(NUM_DST, IN, generator=generator)
    x = (x_src, x_dst) if bipartite else x_dst
    edge_attr = torch.randn(40, EDGE_DIM, generator=generator)
    return x, torch.stack([src, dst]), edge_attr


def edge_format(edge_index: torch.Tensor, edge_attr: torch.Tensor, kind: str, num_src: int):
    """``edge_index`` as ``kind``; a transposed sparse adjacency holds each pair once, so it
    keeps the first of parallel edges (with their features), in its row-major order."""
    if kind == "tensor":
        return edge_index, edge_attr
    if kind == "EdgeIndex":
        return EdgeIndex(edge_index, sparse_size=(num_src, NUM_DST)), edge_attr
    keys = edge_index[1] * num_src + edge_index[0]
    order = torch.sort(keys, stable=True).indices
    _, counts = torch.unique_consecutive(keys[order], return_counts=True)
    chosen = order[torch.cumsum(counts, 0) - counts]
    adj_t = to_torch_csr_tensor(edge_index[:, chosen].flip(0), size=(NUM_DST, num_src))
    return adj_t, edge_attr[chosen]


def pair(bipartite: bool, kwargs: dict):
    in_channels = (IN + 1, IN) if bipartite else IN
    torch.manual_seed(0)
    theirs = TransformerConv(in_channels, OUT, **kwargs)
    mine = GraphTransformerConv(in_channels, OUT, **kwargs)
    mine.load_state_dict(theirs.state_dict())
    return theirs, mine


def run(conv, x, edge_index, edge_attr, seed=3):
    x = tuple(t.clone().requires_grad_() for t in x) if isinstance(x, tuple) else (
        x.clone().requires_grad_()
    )
    inputs = x if isinstance(x, tuple) else (x,)
    torch.manual_seed(seed)  # the same dropout masks
    args = (x, edge_index) if edge_attr is None else (x, edge_index, edge_attr)
    out, (_, alpha) = conv(*args, return_attention_weights=True)
    (out.square().sum() + alpha.square().sum()).backward()
    grads = [t.grad for t in inputs] + [p.grad for _, p in sorted(conv.named_parameters())]
    return out, alpha, grads


FLAGS = list(itertools.product([False, True], repeat=5))


@pytest.mark.parametrize("kind", ["tensor", "EdgeIndex", "adj_t"])
@pytest.mark.parametrize(
    "concat, beta, edge_dim, root_weight, bipartite",
    FLAGS,
    ids=["".join("1" if f else "0" for f in flags) for flags in FLAGS],
)
def test_equals_transformer_conv(concat, beta, edge_dim, root_weight, bipartite, kind):
    kwargs = dict(heads=2, concat=concat, beta=beta, root_weight=root_weight)
    if edge_dim:
        kwargs["edge_dim"] = EDGE_DIM
    theirs, mine = pair(bipartite, kwargs)
    x, edge_index, edge_attr = graph(bipartite)
    edge_index, edge_attr = edge_format(
        edge_index, edge_attr, kind, NUM_SRC if bipartite else NUM_DST
    )
    edge_attr = edge_attr if edge_dim else None
    out, alpha, grads = run(theirs, x, edge_index, edge_attr)
    out2, alpha2, grads2 = run(mine, x, edge_index, edge_attr)
    torch.testing.assert_close(out2, out)
    torch.testing.assert_close(alpha2, alpha)
    for mine_grad, their_grad in zip(grads2, grads):
        torch.testing.assert_close(mine_grad, their_grad)


@pytest.mark.parametrize("heads, dropout", [(1, 0.0), (3, 0.4)])
@pytest.mark.parametrize("bias", [True, False])
def test_heads_dropout_and_bias_in_training(heads, dropout, bias):
    theirs, mine = pair(False, dict(heads=heads, dropout=dropout, bias=bias, edge_dim=EDGE_DIM))
    theirs.train(), mine.train()
    x, edge_index, edge_attr = graph(False, seed=1)
    want = run(theirs, x, edge_index, edge_attr)
    for got, expected in zip(run(mine, x, edge_index, edge_attr), want):
        torch.testing.assert_close(got, expected)


def test_returns_the_edge_index_it_was_given_and_plain_output_without_weights():
    theirs, mine = pair(False, dict(heads=2))
    x, edge_index, _ = graph(False)
    out, (returned, _) = mine(x, edge_index, return_attention_weights=True)
    assert returned is edge_index
    torch.testing.assert_close(mine(x, edge_index), theirs(x, edge_index))


def test_the_adjacency_mask_adds_nothing_and_self_loops_add_the_loops():
    x, edge_index, edge_attr = graph(False)
    edge_index, edge_attr = remove_self_loops(edge_index, edge_attr)
    torch.manual_seed(0)
    theirs = TransformerConv(IN, OUT, heads=2, edge_dim=EDGE_DIM)
    for mask, reference_edges in (
        (adjacency(self_loops=False), (edge_index, edge_attr)),
        # A self-loop is no edge: its edge features are zero.
        (adjacency(), add_self_loops(edge_index, edge_attr, fill_value=0.0, num_nodes=NUM_DST)),
    ):
        mine = GraphTransformerConv(IN, OUT, heads=2, edge_dim=EDGE_DIM, mask=mask)
        mine.load_state_dict(theirs.state_dict())
        out, (pairs, alpha) = mine(x, edge_index, edge_attr, return_attention_weights=True)
        want, (_, want_alpha) = theirs(x, *reference_edges, return_attention_weights=True)
        torch.testing.assert_close(out, want)
        torch.testing.assert_close(pairs, reference_edges[0])
        torch.testing.assert_close(alpha, want_alpha)


def test_a_wider_mask_attends_its_pairs_and_reuses_a_built_mask():
    x, edge_index, _ = graph(False)
    mine = GraphTransformerConv(IN, OUT, heads=2, mask=khop(2))
    out, (pairs, alpha) = mine(x, edge_index, return_attention_weights=True)
    assert pairs.size(1) > edge_index.size(1) and torch.equal(pairs[:, :40], edge_index)
    theirs = TransformerConv(IN, OUT, heads=2)
    theirs.load_state_dict(mine.state_dict())
    torch.testing.assert_close(out, theirs(x, pairs))
    built = mine.mask.build(edge_index, num_nodes=NUM_DST)
    torch.testing.assert_close(mine(x, edge_index, mask_index=built), out)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = GraphTransformerConv((-1, -1), 8, heads=2)
        self.lin = Linear(-1, 3)

    def forward(self, x, edge_index):
        return self.lin(self.conv(x, edge_index).relu())


def test_lazy_shapes_and_to_hetero():
    conv = GraphTransformerConv((-1, -1), OUT, heads=2)
    x, edge_index, _ = graph(True)
    assert conv(x, edge_index).shape == (NUM_DST, 2 * OUT)
    assert conv.lin_key.in_channels == IN + 1 and conv.lin_query.in_channels == IN
    metadata = (["paper", "author"], [("author", "writes", "paper"), ("paper", "rev", "author")])
    model = to_hetero(Net(), metadata, aggr="sum")
    x_dict = {"paper": torch.randn(5, 4), "author": torch.randn(7, 6)}
    edges = {
        ("author", "writes", "paper"): torch.stack([torch.arange(7), torch.arange(7) % 5]),
        ("paper", "rev", "author"): torch.stack([torch.arange(7) % 5, torch.arange(7)]),
    }
    out = model(x_dict, edges)
    assert out["paper"].shape == (5, 3) and out["author"].shape == (7, 3)


def test_arguments_are_checked():
    x, edge_index, edge_attr = graph(False)
    with pytest.raises(ValueError, match="edge_dim"):
        GraphTransformerConv(IN, OUT)(x, edge_index, edge_attr)
    with pytest.raises(ValueError, match="edge_attr is required"):
        GraphTransformerConv(IN, OUT, edge_dim=EDGE_DIM)(x, edge_index)
    with pytest.raises(ValueError, match="GraphAttention"):
        GraphTransformerConv(IN, OUT, mask=adjacency() | global_tokens(1))
    with pytest.raises(ValueError, match="bipartite"):
        GraphTransformerConv((IN + 1, IN), OUT, mask=khop(2))(graph(True)[0], graph(True)[1])
    with pytest.raises(TypeError, match="mask"):
        GraphTransformerConv(IN, OUT, mask="khop")
    with pytest.raises(ValueError, match="dropout"):
        GraphTransformerConv(IN, OUT, dropout=1.0)
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        GraphTransformerConv(IN, OUT)(x, edge_index[:1])
    with pytest.raises(TypeError, match="neither may be None"):
        GraphTransformerConv(IN, OUT)((x, None), edge_index)


def test_compiles_without_graph_breaks():
    _, mine = pair(False, dict(heads=2, edge_dim=EDGE_DIM, beta=True))
    x, edge_index, edge_attr = graph(False)
    eager = mine(x, edge_index, edge_attr)
    dynamo.reset()
    try:
        compiled = torch.compile(mine, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(x, edge_index, edge_attr), eager)
    finally:
        dynamo.reset()
