"""The places a credential is read from: the environment, a 0600 file, AWS Secrets Manager.

Each source answers one name with its value, None (not there: the next source is tried), or
raises :class:`SecretSourceError` (there, but unusable: a file others may read, an AWS error);
an unusable secret is never skipped over to a later source.

A rotation writes through the source that holds the key (:meth:`write`): a file atomically (temp
file, 0600, fsync, rename), Secrets Manager as a new version (AWSCURRENT moves, the old value
stays as AWSPREVIOUS); the environment cannot be written (:class:`NotWritable`). :meth:`age` is
how old the value is (:class:`SecretAge`): the file's mtime, the version's CreatedDate; undated
where nobody knows (the environment), unreadable where the source could not be asked.
:meth:`locked` serialises a read-modify-write of one name among the processes that share the
source (a file: ``flock`` on a lock file beside it; Secrets Manager has no lock: the caller
re-reads after its write, :mod:`xorj_actors.engine`'s rotator).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from xorj_actors.durable_file import atomic_write
from xorj_actors.secrets._age import SecretAge
from xorj_actors.secrets.settings import AwsSourceSettings, FileSourceSettings, Source

__all__ = ["AwsSource", "EnvSource", "FileSource", "NotWritable", "SecretSource", "SecretSourceError"]


class SecretSourceError(RuntimeError):
    """A credential is in a source but cannot be used; the message never holds its value."""


class NotWritable(SecretSourceError):
    """A source the engine cannot write a credential to (the environment): no rotation there."""

    @classmethod
    def environment(cls, name: str) -> NotWritable:
        return cls(
            f"{name} is in the environment, which the engine cannot write: move it to a 0600 file or "
            "Secrets Manager ([secrets] order) for it to be rotated"
        )


class SecretSource(Protocol):
    kind: Source

    def where(self, name: str) -> str:
        """Where ``name`` is looked for, for an operator (never a value)."""
        ...

    def read(self, name: str) -> str | None: ...

    def write(self, name: str, value: str, mark: str | None = None) -> None:
        """Make ``value`` the credential's current value, with ``mark`` (a rotation's, see
        :meth:`mark`); raises :class:`SecretSourceError`."""
        ...

    def mark(self, name: str) -> str | None:
        """The mark written with the current value, if any (never raises): a rotating engine's
        proof that it made the change (``key_rotation.rotation_mark``), which nobody without the
        old key and the new one could have written."""
        ...

    def age(self, name: str) -> SecretAge:
        """How long ago the current value was written (never raises)."""
        ...

    def locked(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Held across a read-modify-write of ``name`` (a no-op where the source has no lock)."""
        ...


class EnvSource:
    """The process environment (what the engine did before ``[secrets]``)."""

    kind = Source.ENV

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def where(self, name: str) -> str:
        return f"environment variable {name}"

    def read(self, name: str) -> str | None:
        return self._environ.get(name) or None

    def write(self, name: str, value: str, mark: str | None = None) -> None:
        raise NotWritable.environment(name)

    def mark(self, name: str) -> str | None:
        return None

    def age(self, name: str) -> SecretAge:
        return SecretAge.undated()  # a variable has no date

    def locked(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # never written


class FileSource:
    """``dir/NAME``, read only if its mode is 0600 and the engine's user owns it, in a directory
    that no one else may write to (else a file could be swapped in under the name)."""

    kind = Source.FILE

    def __init__(self, settings: FileSourceSettings) -> None:
        self._dir = Path(settings.dir)

    def where(self, name: str) -> str:
        return f"file {self._dir / name}"

    def read(self, name: str) -> str | None:
        try:
            dir_fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretSourceError(f"secrets directory {self._dir}: cannot open: {exc.strerror}") from None
        try:
            self._check_dir(os.fstat(dir_fd))
            return self._read_in(dir_fd, name)
        finally:
            os.close(dir_fd)

    def _check_dir(self, info: os.stat_result) -> None:
        """Refuse a directory others may write to, or that another user owns (root aside: it can
        read every file anyway)."""
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o022:
            raise SecretSourceError(
                f"secrets directory {self._dir}: mode {mode:04o} refused, group and others must not write to it "
                f"(chmod 700 {self._dir})"
            )
        if info.st_uid not in (os.geteuid(), 0):
            raise SecretSourceError(
                f"secrets directory {self._dir}: owned by uid {info.st_uid}, not this process's user "
                f"(uid {os.geteuid()}) nor root"
            )

    def _read_in(self, dir_fd: int, name: str) -> str | None:
        path = self._dir / name
        try:  # O_NONBLOCK: a FIFO under the name opens at once (and is refused below), never blocks
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretSourceError(f"secret file {path}: cannot open: {exc.strerror}") from None
        try:  # checked on the open file: a swap between check and read cannot slip in
            info = os.fstat(fd)
            mode = stat.S_IMODE(info.st_mode)
            if not stat.S_ISREG(info.st_mode):
                raise SecretSourceError(f"secret file {path}: not a regular file")
            if mode != 0o600:
                raise SecretSourceError(f"secret file {path}: mode {mode:04o} refused, it must be 0600 (chmod 600 {path})")
            if info.st_uid != os.geteuid():
                raise SecretSourceError(
                    f"secret file {path}: owned by uid {info.st_uid}, not this process's user (uid {os.geteuid()})"
                )
            with os.fdopen(fd, "rb", closefd=False) as f:
                raw = f.read()
        finally:
            os.close(fd)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretSourceError(f"secret file {path}: not UTF-8 text") from None
        return value.removesuffix("\n").removesuffix("\r") or None  # editors end a file with a newline

    def write(self, name: str, value: str, mark: str | None = None) -> None:
        """Atomically: a 0600 temp file in the same directory, fsync, rename, fsync of the directory;
        ``mark`` first, in ``.NAME.mark`` (a reader that sees the new value finds its mark)."""
        try:
            dir_fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise SecretSourceError(f"secrets directory {self._dir}: cannot open: {exc.strerror}") from None
        try:  # the directory's checks as for a read: never write a key where others could swap it
            self._check_dir(os.fstat(dir_fd))
        finally:
            os.close(dir_fd)
        for file, text in ((f".{name}.mark", mark), (name, value)):
            if text is None:
                continue
            try:
                atomic_write(self._dir / file, text + "\n")
            except OSError as exc:
                raise SecretSourceError(f"secret file {self._dir / file}: cannot write: {exc.strerror}") from None

    def mark(self, name: str) -> str | None:
        try:  # checked as a secret is (0600, owner): a mark others could write proves nothing
            return self.read(f".{name}.mark")
        except SecretSourceError:
            return None

    def age(self, name: str) -> SecretAge:
        """From the file's mtime (a rotation's rename sets it). A copy that kept an old mtime
        looks old: it is rotated sooner, the safe side."""
        try:
            mtime = os.stat(self._dir / name, follow_symlinks=False).st_mtime
        except OSError as exc:  # gone since it was read, or refused: nothing known
            return SecretAge.unreadable(f"secret file {self._dir / name}: cannot stat: {exc.strerror}")
        return SecretAge.dated(time.time() - mtime)

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """``flock`` on ``dir/.NAME.lock`` (0600): every engine sharing the directory (one host, or
        a filesystem whose locks span hosts) writes ``name`` one at a time."""
        try:
            fd = os.open(self._dir / f".{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise SecretSourceError(f"secrets directory {self._dir}: cannot lock {name}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


class AwsSource:
    """AWS Secrets Manager: secret ``prefix + NAME``, its ``SecretString``."""

    kind = Source.AWS

    def __init__(self, settings: AwsSourceSettings) -> None:
        self._settings = settings
        self._client: Any = None
        self._created: dict[str, Any] = {}  # name -> the CreatedDate of the version last read
        self._version: dict[str, str] = {}  # name -> the VersionId of the version last read

    def where(self, name: str) -> str:
        endpoint = f" at {self._settings.endpoint_url}" if self._settings.endpoint_url else ""
        return f"AWS Secrets Manager secret {self._settings.prefix}{name} ({self._settings.region}{endpoint})"

    def _secrets_manager(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            s = self._settings
            cfg = BotoConfig(connect_timeout=s.timeout_s, read_timeout=s.timeout_s, retries={"max_attempts": 2})
            self._client = boto3.client(
                "secretsmanager", region_name=s.region, endpoint_url=s.endpoint_url or None, config=cfg
            )
        return self._client

    def read(self, name: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        secret_id = self._settings.prefix + name
        try:
            answer = self._secrets_manager().get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return None
            raise SecretSourceError(f"AWS Secrets Manager secret {secret_id}: {code or 'error'}") from None
        except BotoCoreError as exc:  # no credentials, endpoint unreachable...
            raise SecretSourceError(f"AWS Secrets Manager secret {secret_id}: {type(exc).__name__}") from None
        value = answer.get("SecretString")
        self._created[name] = answer.get("CreatedDate")
        self._version[name] = answer.get("VersionId") or ""
        if value is None:
            raise SecretSourceError(f"AWS Secrets Manager secret {secret_id}: binary secrets are not read, store a SecretString")
        return value or None

    def write(self, name: str, value: str, mark: str | None = None) -> None:
        """PutSecretValue: a new version becomes AWSCURRENT, the old one AWSPREVIOUS (a secret not
        there yet is created). ``mark`` is the version's id (``ClientRequestToken``: a retry of
        the same write is the same version)."""
        from botocore.exceptions import BotoCoreError, ClientError

        secret_id = self._settings.prefix + name
        client = self._secrets_manager()
        try:
            try:
                token = {} if mark is None else {"ClientRequestToken": mark}
                client.put_secret_value(SecretId=secret_id, SecretString=value, **token)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code", "") != "ResourceNotFoundException":
                    raise
                client.create_secret(Name=secret_id, SecretString=value)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise SecretSourceError(f"AWS Secrets Manager secret {secret_id}: write refused: {code or 'error'}") from None
        except BotoCoreError as exc:
            raise SecretSourceError(f"AWS Secrets Manager secret {secret_id}: write failed: {type(exc).__name__}") from None

    def mark(self, name: str) -> str | None:
        """The AWSCURRENT version's id (a rotation's mark; a console's change: a random UUID)."""
        try:
            self.read(name)
        except SecretSourceError:
            return None
        return self._version.get(name) or None

    def age(self, name: str) -> SecretAge:
        """From the AWSCURRENT version's CreatedDate (read again: another node may have rotated).
        An error (throttled, away) is unreadable, never "unknown": it must not look due."""
        try:
            if self.read(name) is None:
                return SecretAge.unreadable(f"AWS Secrets Manager secret {self._settings.prefix}{name}: not there")
        except SecretSourceError as exc:
            return SecretAge.unreadable(str(exc))
        created = self._created.get(name)
        if created is None or not hasattr(created, "timestamp"):
            return SecretAge.undated()
        return SecretAge.dated(time.time() - created.timestamp())

    def locked(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # no lock in Secrets Manager: the writer re-reads instead
