"""Concurrent forwards of one aggregation module from several threads (as PyTorch modules allow):
each thread's regulariser samples its own forward."""

import copy
import pickle
import threading

import pytest
import torch

from gnnagg.aggr import GRUAggregation, LCMAggregation, LSTMAggregation

NUM_THREADS = 3


def _inputs(k):
    generator = torch.Generator().manual_seed(k)
    rows = 12 + 7 * k  # a different shape per thread: a mixed-up record cannot pass unnoticed
    return torch.randn(rows, 4, generator=generator), torch.randint(
        0, 5, (rows,), generator=generator
    )


def _regulariser(aggr, k):
    if isinstance(aggr, LCMAggregation):
        return aggr.associativity_loss(32, seed=k)
    return aggr.permutation_loss(32, torch.Generator().manual_seed(k))


@pytest.mark.parametrize(
    "build",
    [lambda: LCMAggregation(4, 4), lambda: GRUAggregation(4, 4), lambda: LSTMAggregation(4, 4)],
)
def test_threads_training_one_module_each_see_their_own_forward(build):
    torch.manual_seed(0)
    aggr = build()
    expected = []
    for k in range(NUM_THREADS):
        x, index = _inputs(k)
        aggr(x, index, dim_size=5)
        expected.append(_regulariser(aggr, k).detach())

    # Every thread runs its forward before any computes its regulariser: with one shared record
    # all but the last would sample another thread's states (and backpropagate into its graph).
    barrier = threading.Barrier(NUM_THREADS, timeout=60)
    results, errors = {}, []

    def train(k):
        try:
            x, index = _inputs(k)
            out = aggr(x, index, dim_size=5)
            barrier.wait()
            regulariser = _regulariser(aggr, k)
            barrier.wait()
            (out.square().mean() + regulariser).backward()
            results[k] = regulariser.detach()
        except Exception as error:  # noqa: BLE001 - reported below with its thread
            errors.append((k, error))
            barrier.abort()

    threads = [threading.Thread(target=train, args=(k,)) for k in range(NUM_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for k in range(NUM_THREADS):
        torch.testing.assert_close(results[k], expected[k])


def test_a_thread_without_a_forward_has_nothing_to_regularise():
    aggr = LCMAggregation(4, 4)
    aggr(*_inputs(0))
    errors = []

    def other():
        try:
            aggr.associativity_loss()
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "in this thread" in str(errors[0])
    aggr.associativity_loss()  # the main thread's forward is still there


def test_copies_start_without_the_record():
    aggr = LCMAggregation(4, 4)
    aggr(*_inputs(0))
    for clone in (copy.copy(aggr), copy.deepcopy(aggr), pickle.loads(pickle.dumps(aggr))):
        with pytest.raises(RuntimeError, match="needs a forward pass"):
            clone.associativity_loss()
    aggr.associativity_loss()
