"""Loopback servers that speak real wire formats, for the demo and the tests (never internet).

A platform's module ends with its part of the demo world: `demo_sandbox(port)`, the sandbox with
its demo data, and `DEMO = sandbox_part(default_port, demo_sandbox, {secret env: demo value})`,
which its source type's declaration names.
"""
