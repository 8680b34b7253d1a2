"""Fixtures of the integration tier: the bridge's processes (runedge, media worker, runami)."""

from tests.integration.bridge_stack import bridge  # noqa: F401
