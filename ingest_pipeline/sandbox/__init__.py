"""Loopback servers that speak real wire formats, for the demo and the tests (never internet)."""
