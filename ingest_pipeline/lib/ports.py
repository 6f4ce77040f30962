"""A free TCP port on loopback, for the servers the demo, tests and benchmarks start."""

import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
