"""engine.stopping's parts one at a time: a pipe's reader gone, and a SIGTERM deferred to a
loop's end, nested, or cut short by a stretch that may stop at once (docs/loop.md; the whole
commands' stops: tests/test_cli.py, tests/trainer/test_train_loop.py)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from engine import stopping


@pytest.fixture
def state(monkeypatch):
    """The module's state put back after the test, and no signal received at its start."""
    for name in ("received", "pending", "signal_name", "deferring"):
        monkeypatch.setattr(stopping._State, name, getattr(stopping._State, name))
    stopping._State.received, stopping._State.pending = False, False
    stopping._State.signal_name, stopping._State.deferring = "SIGTERM", 0
    return stopping._State


def test_a_pipe_whose_reader_closed_is_a_reader_gone_and_a_file_is_not(tmp_path):
    read, write = os.pipe()
    try:
        assert stopping.reader_gone(write) is False  # its reader is there
        os.close(read)
        assert stopping.reader_gone(write) is True
    finally:
        os.close(write)
    with open(tmp_path / "f", "w") as f:
        assert stopping.reader_gone(f.fileno()) is False


def test_a_sigterm_within_deferred_waits_for_the_block_s_end(state):
    """Within deferred() a SIGTERM is recorded (requested, its code), not raised; the block's
    end raises it, once; an inner deferred() ends without raising while the outer goes on.
    (Terminated is a KeyboardInterrupt: caught here, lest it stop pytest.)"""
    steps: list[str] = []
    try:
        with stopping.deferred():
            with stopping.deferred():
                stopping._on_sigterm(signal.SIGTERM, None)
                steps.append("recorded")
                assert stopping.requested() and stopping.requested_code() == 143
            steps.append("inner end")  # still waiting for the loop
            assert stopping.requested()
        steps.append("outer end")
    except stopping.Terminated as stop:
        steps.append(f"raised {stop.code}")
    assert steps == ["recorded", "inner end", "raised 143"]
    assert not stopping.requested() and stopping.requested_code() == 0
    try:
        with stopping.deferred():  # nothing waits: the block ends as any
            steps.append("nothing")
    except stopping.Terminated:
        steps.append("raised")
    assert steps[-1] == "nothing"


def test_a_sigterm_within_undeferred_raises_at_once_and_one_waiting_on_entry(state):
    with stopping.deferred():
        with pytest.raises(stopping.Terminated), stopping.undeferred():
            stopping._on_sigterm(signal.SIGTERM, None)  # validation: cut short at once
            raise AssertionError("not reached")  # pragma: no cover
        assert state.deferring == 1  # the loop's deferral is back
    state.received = False
    with pytest.raises(stopping.Terminated), stopping.deferred():
        stopping._on_sigterm(signal.SIGHUP, None)
        with stopping.undeferred():  # one already waits: raised on entry
            raise AssertionError("not reached")  # pragma: no cover
    assert not stopping.requested() and stopping.received_signal() == ("SIGHUP", 129)


def test_deferred_in_another_thread_changes_nothing(state):
    seen: list[int] = []

    def run() -> None:
        with stopping.deferred():
            seen.append(state.deferring)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == [0]


def test_hangups_handled_where_the_handler_or_ignore_is_set(state):
    saved = signal.getsignal(signal.SIGHUP)
    try:
        for handler, handled in ((signal.SIG_DFL, False), (signal.SIG_IGN, True),
                                 (stopping._on_sigterm, True)):  # fmt: skip
            signal.signal(signal.SIGHUP, handler)
            assert stopping.hangups_handled() is handled, handler
    finally:
        signal.signal(signal.SIGHUP, saved)
