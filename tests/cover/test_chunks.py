"""The reference's chunk arithmetic agrees with torch's split rules.

`osdconform.reference._chunks` restates, in plain integers, how ``Shard(dim)``
and FSDP2 cut a dim of size ``n`` over ``k`` ranks, so that the oracle does not
borrow the rule from the code it judges.  These tests pin that restatement to
torch's behaviour: if torch ever changed ``torch.chunk`` (or we got the empty
trailing chunks wrong), every sharded comparison downstream would be judged by
a wrong oracle.

Pure: no processes.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from osdconform.reference import chunk_bounds, chunk_offsets, chunk_sizes

SIZES = st.integers(0, 40)
RANKS = st.integers(1, 8)

#: Pure and cheap: pin the example count rather than take the suite's profile
#: (the osdconform plugin loads ``dev``/``ci`` profiles sized for distributed
#: examples, 10-12 each).
many = settings(max_examples=300)


def _torch_chunk_sizes(n: int, k: int) -> list[int]:
    """What ``torch.chunk`` gives, padded with empty chunks to ``k`` entries.

    ``torch.chunk`` may return fewer than ``k`` chunks (5 over 4 gives 2, 2, 1);
    a rank past the last chunk holds an empty shard.
    """
    sizes = [c.shape[0] for c in torch.arange(n).chunk(k)]
    assert len(sizes) <= k
    return sizes + [0] * (k - len(sizes))


@many
@given(n=SIZES, k=RANKS)
def test_sizes_match_torch_chunk(n, k):
    sizes = chunk_sizes(n, k)
    assert len(sizes) == k
    assert sum(sizes) == n
    assert all(s >= 0 for s in sizes)
    assert sizes == _torch_chunk_sizes(n, k)


@many
@given(n=SIZES, k=RANKS)
def test_offsets_are_prefix_sums(n, k):
    sizes = chunk_sizes(n, k)
    assert chunk_offsets(n, k) == list(itertools.accumulate([0] + sizes[:-1]))


@many
@given(n=SIZES, k=RANKS)
def test_offsets_cut_the_same_elements_as_torch_chunk(n, k):
    """``tensor_split`` at the offsets gives exactly ``torch.chunk``'s pieces.

    (``tensor_split(x, k)`` with a *count* follows another rule - it spreads the
    remainder, 5 over 4 is 2, 1, 1, 1 - so the index form is the one that must
    agree.)
    """
    x = torch.arange(n)
    ours = x.tensor_split(chunk_offsets(n, k)[1:])
    theirs = list(x.chunk(k))
    theirs += [x[n:]] * (k - len(theirs))
    assert len(ours) == k
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


@many
@given(n=SIZES, k=RANKS, data=st.data())
def test_bounds_are_offset_and_size_of_one_chunk(n, k, data):
    i = data.draw(st.integers(0, k - 1), label="index")
    off, size = chunk_bounds(n, k, i)
    assert (off, size) == (chunk_offsets(n, k)[i], chunk_sizes(n, k)[i])
    assert torch.equal(torch.arange(n).narrow(0, off, size), torch.arange(n).tensor_split(chunk_offsets(n, k)[1:])[i])


def test_every_split_in_range_matches_torch_chunk():
    """The whole space the properties draw from (41 x 8 splits), exhaustively."""
    for n in range(41):
        for k in range(1, 9):
            assert chunk_sizes(n, k) == _torch_chunk_sizes(n, k), (n, k)
            assert chunk_offsets(n, k) == list(itertools.accumulate([0] + chunk_sizes(n, k)[:-1])), (n, k)


def test_small_dims_leave_trailing_ranks_empty():
    """The example from the module docstring: 5 over 4 -> 2, 2, 1, 0."""
    assert chunk_sizes(5, 4) == [2, 2, 1, 0]
    assert chunk_offsets(5, 4) == [0, 2, 4, 5]
    assert chunk_sizes(1, 8) == [1, 0, 0, 0, 0, 0, 0, 0]
    assert chunk_sizes(0, 3) == [0, 0, 0]


@pytest.mark.parametrize("n, k", [(3, 0), (3, -1), (-1, 2)])
def test_invalid_splits_are_rejected(n, k):
    with pytest.raises(ValueError):
        chunk_sizes(n, k)
