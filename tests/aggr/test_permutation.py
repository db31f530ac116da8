"""The commutator of a state transition, the quantity the permutation regulariser penalises."""

import torch

from gnnagg.aggr.permutation import commutator_loss


def test_commutator_loss_formula():
    # Small integers keep every sum exact, so the additive transition commutes bit for bit.
    s = (torch.randint(-9, 9, (5, 3)).double(),)
    a, b = torch.randint(-9, 9, (5, 3)).double(), torch.randint(-9, 9, (5, 3)).double()

    def additive(state, x):
        return (state[0] + x,)

    def damped(state, x):
        return (0.5 * state[0] + x,)

    assert commutator_loss(additive, s, a, b) == 0
    # f(f(s,a),b) - f(f(s,b),a) = 0.5 a + b - 0.5 b - a = 0.5 (b - a)
    expected = (0.5 * (b - a)).square().sum(-1).mean()
    torch.testing.assert_close(commutator_loss(damped, s, a, b), expected)
