"""A fake of the Sora 2 gateway for the demo and the tests (docs/gateway.md).

Production code never imports it: `make run` starts it as a process
(`python -m simulator`) in demo mode, and integration tests start it in-process.
"""

from simulator.server import CREATE_PATHS, RESULT_PREFIX, VIDEO_PREFIX, Simulator

__all__ = ["CREATE_PATHS", "RESULT_PREFIX", "VIDEO_PREFIX", "Simulator"]
