"""Blobs in a Cloud Storage bucket (the fleet's; files.py keeps them in a directory on one VM): JOBS_BUCKET,
gs://bucket[/prefix], created by the stack with a lifecycle rule for the TTL (infra/jobs_store.py).

An upload returns once Cloud Storage has the whole object, and from then on every VM reads it (Cloud Storage
is strongly consistent for reads after writes: https://cloud.google.com/storage/docs/consistency), so the
audio is durable before a job is created. The client checks each upload with a CRC32C checksum. Credentials
are the VM's service account (Application Default Credentials), which holds Storage Object User on this
bucket alone.
"""

from __future__ import annotations

import tempfile
from typing import BinaryIO

from google.api_core.exceptions import NotFound
from google.cloud import storage

CHUNK = 8 << 20  # bytes per request of a resumable upload (a multiple of 256 KiB, as the API requires)
SPOOL = 16 << 20  # an opened blob stays in memory up to this size, then spills to a temporary file


class _Counted:
    """A read-only stream that counts what was read from it (the upload's size, known only at its end)."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.size = stream, 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.size += len(data)
        return data

    def tell(self) -> int:
        return self.size


def split_bucket_url(url: str) -> tuple[str, str]:
    """gs://bucket/some/prefix -> ("bucket", "some/prefix/"); gs://bucket -> ("bucket", "")."""
    name, _, prefix = url.removeprefix("gs://").strip("/").partition("/")
    return name, f"{prefix.strip('/')}/" if prefix.strip("/") else ""


class GcsBlobs:
    def __init__(self, bucket_url: str, client: storage.Client | None = None):
        name, self.prefix = split_bucket_url(bucket_url)
        self.bucket = (client or storage.Client()).bucket(name)

    def _blob(self, key: str) -> storage.Blob:
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError(f"bad blob key {key!r}")
        return self.bucket.blob(self.prefix + key, chunk_size=CHUNK)

    def put(self, key: str, stream: BinaryIO) -> int:
        counted = _Counted(stream)
        self._blob(key).upload_from_file(counted, rewind=False, content_type="application/octet-stream")
        return counted.size

    def open(self, key: str) -> BinaryIO:
        """The whole blob, downloaded: the runner's request reads and seeks it like an upload."""
        copy = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 (the caller closes it)
        try:
            self._blob(key).download_to_file(copy)
        except NotFound:
            copy.close()
            raise FileNotFoundError(key) from None
        copy.seek(0)
        return copy

    def read(self, key: str) -> bytes:
        try:
            return self._blob(key).download_as_bytes()
        except NotFound:
            raise FileNotFoundError(key) from None

    def delete(self, key: str) -> None:
        try:
            self._blob(key).delete()
        except NotFound:
            pass
