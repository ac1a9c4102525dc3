"""Freezing long-lived objects out of the cyclic garbage collector (mlplatform.common.heap)."""

from __future__ import annotations

import gc
import weakref

import pytest

from mlplatform.common.heap import freeze_long_lived


class Node:
    """A plain object the collector tracks; `link` makes cycles."""

    link: object = None


def tracked_ids() -> set[int]:
    return {id(item) for item in gc.get_objects()}


@pytest.mark.parametrize("full_collection", [True, False], ids=["full", "young generations"])
def test_frozen_objects_leave_the_collections_and_garbage_is_collected_before(
    full_collection: bool,
) -> None:
    """Objects alive at the freeze are out of every generation a collection walks, new ones
    are not. Young cyclic garbage is collected first either way; cyclic garbage that already
    reached the oldest generation only by a full collection (what startup pays for), and a
    young-generations freeze keeps it (why a dropped model must leave no cycles)."""
    old = Node()
    old.link = old
    old_ref = weakref.ref(old)
    gc.collect()  # `old` survives into the oldest generation...
    del old  # ...and only then becomes garbage
    young = Node()
    young.link = young
    young_ref = weakref.ref(young)
    del young
    kept = [Node() for _ in range(100)]

    frozen = freeze_long_lived(full_collection)

    assert frozen >= len(kept)
    assert young_ref() is None
    assert (old_ref() is None) is full_collection
    tracked = tracked_ids()
    assert not any(id(node) in tracked for node in kept)
    fresh = Node()
    assert id(fresh) in tracked_ids()
