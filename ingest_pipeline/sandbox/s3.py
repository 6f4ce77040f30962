"""A real S3 emulator on loopback: moto's server mode, reached over HTTP like AWS or MinIO.

Used by `ingest-pipeline demo`, the tests and the benchmarks; never a mock in the process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import boto3
import requests

from ingest_pipeline.lib.ports import free_port

# Any key pair works with the emulator; set only where the environment has none.
EMULATOR_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "emulator-key",
    "AWS_SECRET_ACCESS_KEY": "emulator-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Emulator:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> S3Emulator:
        moto = Path(sys.executable).parent / "moto_server"
        self.process = subprocess.Popen(
            [str(moto), "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id="probe",
            aws_secret_access_key="probe",
            region_name="us-east-1",
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.list_buckets()
                return self
            except Exception as exc:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    message = f"the S3 emulator did not start on {self.endpoint_url}"
                    raise RuntimeError(message) from exc
                time.sleep(0.2)

    def reset(self) -> None:
        """Every bucket and object gone, as on a new emulator (moto's reset endpoint)."""
        answer = requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=30)
        answer.raise_for_status()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> S3Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
