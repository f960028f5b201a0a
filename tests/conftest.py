"""Shared fixtures. Tests are tiny and synthetic; none needs network or a GPU."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Property-based tests (tests/*/test_properties_*.py): deterministic and fast by default (CI runs
# the same examples every time); HYPOTHESIS_PROFILE=thorough draws many more, randomly. "ci"
# replaces Hypothesis's own profile of that name (loaded on CI machines): keep what it relaxes
# for slow machines (the too_slow health check; no example database).
settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Two cores on CI: keep torch from oversubscribing them when tests run model code.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Never reach a model hub from a test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests read the words the engine prints: rich colours even a StringIO console when CI sets
# FORCE_COLOR (some services do), and 33 of tests/test_cli.py's tests then read escape codes.
os.environ.pop("FORCE_COLOR", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``gpu`` tests skip with a reason when CUDA is absent; ``slow`` tests run only with ``-m slow``."""
    markexpr = config.getoption("-m") or ""
    cuda = None
    for item in items:
        if "slow" in item.keywords and "slow" not in markexpr:
            item.add_marker(pytest.mark.skip(reason="slow test: run with `pytest -m slow`"))
        if "gpu" in item.keywords:
            if cuda is None:
                try:
                    import torch

                    cuda = torch.cuda.is_available()
                except ImportError:
                    cuda = False
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none is available"))


@pytest.fixture
def one_thread():
    """Torch on one CPU thread for the test, restored afterwards: outputs are bit-identical for a
    fixed thread count (1 and 2 threads differ slightly), and on a shared 2-core machine one
    thread keeps tiny models from crawling."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """annotations.rle ignores pycocotools' own DeprecationWarning at import, but pytest sets up
    each test's warning filters after the imports (``-W error::DeprecationWarning`` in front):
    the same filter again, inside the test's warning scope and before its fixtures (a module's
    or session's fixture decodes too), so that every decode runs as it does for users."""
    from annotations.rle import ignore_decode_warning

    ignore_decode_warning()
