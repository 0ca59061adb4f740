"""One local stack per test session (the modules are one xdist group), on the test-only System of runtime_system.py; ``fresh``
resets it (data, mappings, stats) while the function containers stay warm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_system import CODE, FIXTURES, TEST_SYSTEM
from streamsense_local.stack import LocalStack


@pytest.fixture(scope="session")
def functions_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("functions")
    for name, code in CODE.items():
        (root / name).symlink_to(FIXTURES / code, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def stack(functions_dir: Path) -> Iterator[LocalStack]:
    with LocalStack.start(TEST_SYSTEM, functions_dir=functions_dir) as s:
        yield s


@pytest.fixture
def fresh(stack: LocalStack) -> LocalStack:
    stack.reset()
    stack.set_duplicate_s3_notifications(False)
    return stack

