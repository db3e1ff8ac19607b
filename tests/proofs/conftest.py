"""The execution tests' engine on the in-process localnet (a real trade to prove)."""

from tests.execution.conftest import exec_engine_factory, harness  # noqa: F401 - fixtures
