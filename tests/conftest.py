"""Shared fixtures: small generated video trees (no downloads), built once per test session."""

import pytest

from preprocess.synthetic import make_dataset


@pytest.fixture(scope="session")
def ucf11_tree(tmp_path_factory):
    """A tiny UCF11-layout tree: 3 classes x 2 groups x 2 clips, 8-12 frames at 64x48, .mpg and .avi."""
    return make_dataset(tmp_path_factory.mktemp("ucf11") / "UCF11", classes=3, groups=2, clips_per_group=2,
                        frames=(8, 12), size=(64, 48), seed=1)


@pytest.fixture(scope="session")
def hollywood2_tree(tmp_path_factory):
    """A tiny Hollywood2-layout tree: 12 actions, 24 clips (half train, half test), multi-label."""
    return make_dataset(tmp_path_factory.mktemp("h2") / "Hollywood2", classes=12, groups=1, clips_per_group=2,
                        frames=(6, 8), size=(64, 48), seed=2, layout="hollywood2")


@pytest.fixture(scope="session")
def celebfaces_tree(tmp_path_factory):
    """A tiny YouTube-Celebrities-layout tree: 4 person folders, 2 clips each."""
    return make_dataset(tmp_path_factory.mktemp("celeb") / "celebrities", classes=4, groups=1, clips_per_group=2,
                        frames=(6, 8), size=(64, 48), seed=3, layout="celebfaces")


# --- slow tests: the real-size quickstart; skipped unless --slow (`.ci/run` runs them after the suite) ----------
def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow (the README's demos)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes on 2 cores; run with --slow (.ci/run does)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
