"""OnlineNormalizer: batch statistics, the accumulation limit, float64 sums, state_dict."""

import pytest
import torch

from gnnagg.models import OnlineNormalizer


def test_online_normalizer_matches_batch_statistics_and_stops_accumulating():
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(50, 3, generator=gen) * 4 + 2 for _ in range(4)]
    norm = OnlineNormalizer(3, max_accumulations=3)
    x = torch.randn(5, 3, generator=gen)
    torch.testing.assert_close(norm(x), x)  # identity before any data
    for b in batches:
        norm(b, accumulate=True)
    seen = torch.cat(batches[:3]).double()
    torch.testing.assert_close(norm.mean(), seen.mean(0))
    torch.testing.assert_close(norm.std(), seen.std(0, unbiased=False))
    assert int(norm.accumulations) == 3
    torch.testing.assert_close(norm.inverse(norm(x)), x, rtol=1e-5, atol=1e-5)
    constant = OnlineNormalizer(1, std_epsilon=1e-8)
    constant(torch.ones(10, 1), accumulate=True)
    assert float(constant.std()) == 1e-8
    # The sums stay float64 when the module is cast, and survive state_dict.
    norm.float()
    assert norm.total.dtype == torch.float64
    other = OnlineNormalizer(3)
    other.load_state_dict(norm.state_dict())
    torch.testing.assert_close(other.mean(), norm.mean())
    with pytest.raises(ValueError, match="x"):
        norm(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="size"):
        OnlineNormalizer(0)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: OnlineNormalizer(3, std_epsilon="1"), TypeError, "std_epsilon must be a real"),
        (lambda: OnlineNormalizer(3, std_epsilon=float("inf")), ValueError, "std_epsilon must be"),
        (lambda: OnlineNormalizer(3)(torch.ones(4, 3).long()), TypeError, "x: expected"),
        (lambda: OnlineNormalizer(3)(torch.randn(4, 3), accumulate="yes"), TypeError, "accumulate"),
        (lambda: OnlineNormalizer(3)(torch.tensor(1.0)), ValueError, "x: expected 3 features"),
    ],
)
def test_bad_arguments_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_sizes_beyond_memory_are_refused(monkeypatch):
    from gnnagg import _checks

    monkeypatch.setattr(_checks, "available_memory", lambda device: 4 << 30)
    with pytest.raises(ValueError, match="size=1000000000000"):
        OnlineNormalizer(10**12)
