"""torch_defaults and caller_rng in several threads: the process's default dtype and random
generators are the caller's again once the last block returns, and no block runs under the
caller's while another thread's is inside."""

from __future__ import annotations

import random
import threading

import torch

from trainer.checkpoint import caller_rng, torch_defaults


def _overlap(block, a_inside=None, b_inside=None, b_after_a=None) -> None:
    """A enters, B enters, A leaves, B leaves: each a ``block()`` in a thread of its own."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    errors = []

    def a() -> None:
        try:
            with block():
                if a_inside:
                    a_inside()
                a_in.set()
                assert b_in.wait(10)
        except BaseException as e:  # noqa: BLE001 - reported by the test's thread
            errors.append(e)
        finally:
            a_in.set()
            a_out.set()

    def b() -> None:
        try:
            assert a_in.wait(10)
            with block():
                if b_inside:
                    b_inside()
                b_in.set()
                assert a_out.wait(10)
                if b_after_a:
                    b_after_a()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            b_in.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


def test_overlapping_torch_defaults_keep_float32_inside_and_the_callers_after():
    """Before, A's return put back the float64 it found while B was still inside (B's tensors
    from then on were float64), and B's return put back the float32 it found: the caller's
    float64 lost for good."""
    seen = {}
    torch.set_default_dtype(torch.float64)
    try:
        _overlap(
            lambda: torch_defaults(training=True),
            b_after_a=lambda: seen.setdefault("B", torch.get_default_dtype()),
        )
        seen["after"] = torch.get_default_dtype()
    finally:
        torch.set_default_dtype(torch.float32)
    assert seen == {"B": torch.float32, "after": torch.float64}


def test_overlapping_caller_rng_puts_the_callers_generators_back_once_the_last_returns():
    """A seeds 1, B seeds 2; after A returns B still draws from its own seed, and after B returns
    the caller's stream goes on where it was. Before, A's return put the caller's state back
    under B, and B's return left A's seeded state as the caller's."""
    random.seed(5)
    expected = random.Random(5).random()
    drawn = {}
    _overlap(
        caller_rng,
        a_inside=lambda: random.seed(1),
        b_inside=lambda: random.seed(2),
        b_after_a=lambda: drawn.setdefault("B", random.random()),
    )
    assert drawn == {"B": random.Random(2).random()}
    assert random.random() == expected


def test_a_block_nested_in_the_same_thread_puts_back_what_it_found():
    """The resume check's caller_rng inside train's: the inner block restores the run's state
    (seeded 1), the outer the caller's, as before the blocks were shared between threads."""
    random.seed(5)
    caller = random.Random(5).random()
    with caller_rng():
        random.seed(1)
        with caller_rng():
            random.seed(9)
        inner = random.random()
    assert (inner, random.random()) == (random.Random(1).random(), caller)
    torch.set_default_dtype(torch.float64)
    try:
        with torch_defaults():
            with torch_defaults():
                pass
            inside = torch.get_default_dtype()
        after = torch.get_default_dtype()
    finally:
        torch.set_default_dtype(torch.float32)
    assert (inside, after) == (torch.float32, torch.float64)
