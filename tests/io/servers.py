"""Start and stop the byte-counting test servers of ``serve.py`` (127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

SERVE = Path(__file__).with_name("serve.py")


class Server:
    """One server process: ``kind`` is ``"http"`` (serving ``folder``) or ``"s3"`` (with
    ``folder`` preloaded into ``bucket`` as ``s3://bucket/<folder name>``)."""

    def __init__(self, kind: str, folder: Path | None = None, bucket: str | None = None) -> None:
        args = [sys.executable, str(SERVE), kind] + ([str(folder)] if folder else [])
        args += [bucket] if bucket else []
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"{kind} test server did not start")
        self.port = int(line)
        self.base = f"http://127.0.0.1:{self.port}"

    def _get(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=10) as reply:
            return json.loads(reply.read() or b"{}")

    def stats(self) -> dict:
        """``{"bytes": N, "requests": M}`` of response bodies served since the last reset."""
        return self._get("/__stats__")

    def reset(self) -> None:
        self._get("/__reset__")

    def drop(self, n: int, match: str = "") -> None:
        """Cut the next ``n`` responses whose path contains ``match`` in half (HTTP only)."""
        self._get(f"/__drop__?n={n}&match={match}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def s3_environment(port: int, credentials: bool = True) -> dict[str, str]:
    """Environment variables pointing S3 clients (botocore, s3fs) at the local server."""
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",  # botocore would ask 169.254.169.254 otherwise
    }
    if credentials:
        env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return env


def upload_folder(port: int, folder: Path, bucket: str) -> str:
    """Put every file under ``folder`` into ``bucket`` (created); returns ``s3://bucket/name``."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    for path in folder.rglob("*"):
        if path.is_file():
            key = f"{folder.name}/{path.relative_to(folder).as_posix()}"
            client.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{folder.name}"


def stored_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def loopback_only(monkeypatch):
    """Fail any connection this process makes beyond 127.0.0.0/8 (and ::1)."""
    real = socket.socket.connect
    attempts: list[str] = []

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and not (
            host.startswith("127.") or host in ("::1", "localhost")
        ):
            attempts.append(host)
            raise OSError(f"test: connection to {host} refused (loopback only)")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts
    assert not attempts, f"tried to reach beyond 127.0.0.1: {attempts}"
