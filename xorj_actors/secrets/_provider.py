"""The credential provider: every secret the engine reads, from the configured sources in order.

It resolves a set of names once at start (a missing required one stops the process, exit 2) and
again on ``reload`` (SIGHUP, ``ctl reload-secrets``). Values stay in memory; what it reports
(which source, what changed, what is missing and where it was looked for) never holds one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from xorj_actors.secrets._age import SecretAge
from xorj_actors.secrets._sources import AwsSource, EnvSource, FileSource, SecretSource, SecretSourceError
from xorj_actors.secrets.settings import SecretsSettings, Source

__all__ = ["CredentialProvider", "Missing", "Resolution", "current_environ", "install_provider"]


@dataclass(frozen=True, slots=True)
class Missing:
    """A credential that could not be resolved: where it was looked for, and why it was refused."""

    name: str
    looked: tuple[str, ...]
    #: A source that has it but refused it (a file's mode, an AWS error); None: found nowhere.
    problem: str | None = None

    def describe(self) -> str:
        why = self.problem or "not found"
        return f"{self.name}: {why} (looked in: {'; '.join(self.looked)})"


@dataclass(frozen=True, slots=True)
class Resolution:
    """One resolution pass: the source of each credential found, and the ones that failed."""

    sources: Mapping[str, Source] = field(default_factory=dict)
    missing: tuple[Missing, ...] = ()
    #: Names whose value differs from the previous pass (a rotation), or that appeared / vanished.
    changed: tuple[str, ...] = ()
    #: Names whose source holds a new value this process does not take (the audit HMAC key).
    held: tuple[str, ...] = ()


def _open_sources(settings: SecretsSettings, environ: Mapping[str, str]) -> list[SecretSource]:
    make = {
        Source.ENV: lambda: EnvSource(environ),
        Source.FILE: lambda: FileSource(settings.file),
        Source.AWS: lambda: AwsSource(settings.aws),
    }
    return [make[kind]() for kind in settings.order]


class CredentialProvider:
    """Resolves named credentials through ``settings.order``; thread-safe.

    Args:
        settings: the ``[secrets]`` section.
        environ: the process environment (the env source, and the base of :meth:`environ`).
    """

    def __init__(self, settings: SecretsSettings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._environ = dict(os.environ if environ is None else environ)
        self._sources = _open_sources(settings, self._environ)
        self._lock = threading.Lock()
        self._names: tuple[str, ...] = ()
        self._values: dict[str, str] = {}
        self._found: dict[str, Source] = {}

    def _read(self, name: str) -> tuple[str | None, Source | None, Missing | None]:
        looked = []
        for source in self._sources:
            looked.append(source.where(name))
            try:
                value = source.read(name)
            except SecretSourceError as exc:
                return None, None, Missing(name, tuple(looked), str(exc))
            if value is not None:
                return value, source.kind, None
        return None, None, Missing(name, tuple(looked))

    def resolve(self, names: Iterable[str], required: Iterable[str] = ()) -> Resolution:
        """Read every name in ``names`` (and ``required``); the missing ones reported are the
        required ones not found, and any name a source refused. The values found are kept."""
        return self._pass(tuple(dict.fromkeys((*names, *required))), set(required), frozenset(), first=True)

    def reload(
        self,
        required: Iterable[str] = (),
        hold: Iterable[str] = (),
        before_swap: Callable[[Iterable[str]], object] | None = None,
    ) -> Resolution:
        """Read the same names again. Rotated values replace the old ones only if nothing is
        missing (else every old value stays); a name in ``hold`` keeps its old value whatever
        its source now holds (reported in ``held``). ``before_swap(values)`` gets every value
        read before any replaces an old one (the redactor: no reader may see a value it does not
        mask yet)."""
        return self._pass(self._names, set(required), frozenset(hold), first=False, before_swap=before_swap)

    def _pass(
        self,
        wanted: tuple[str, ...],
        must: set[str],
        hold: frozenset[str],
        *,
        first: bool,
        before_swap: Callable[[Iterable[str]], object] | None = None,
    ) -> Resolution:
        values: dict[str, str] = {}
        found: dict[str, Source] = {}
        missing: list[Missing] = []
        for name in wanted:
            value, kind, miss = self._read(name)
            if value is not None and kind is not None:
                values[name], found[name] = value, kind
            elif miss is not None and (name in must or miss.problem is not None):
                missing.append(miss)
        if before_swap is not None and values:
            before_swap(tuple(values.values()))  # a refused reload's values too: secrets all the same
        with self._lock:
            old, old_found = self._values, self._found
            held = tuple(n for n in wanted if n in hold and n in old and values.get(n) != old[n])
            for name in held:
                values[name], found[name] = old[name], old_found[name]
            changed = () if first else tuple(n for n in wanted if old.get(n) != values.get(n))
            if first or not missing:
                self._names, self._values, self._found = wanted, values, found
        return Resolution(sources=dict(found), missing=tuple(missing), changed=changed, held=held)

    def _holder(self, name: str) -> SecretSource | None:
        with self._lock:
            kind = self._found.get(name)
        return next((s for s in self._sources if s.kind == kind), None)

    def write(self, name: str, value: str, *, beside: str | None = None, mark: str | None = None) -> Source:
        """Write ``value`` through the source that holds ``name`` (one never found: the source
        that holds ``beside``); the next :meth:`reload` takes it. Raises
        :class:`SecretSourceError` (:class:`NotWritable`: the environment) and changes nothing.
        ``mark``: a rotation's mark, written with the value (:meth:`mark`)."""
        source = self._writer(name, beside)
        source.write(name, value, mark)
        return source.kind

    def mark(self, name: str) -> str | None:
        """The mark written with the value now in ``name``'s source (None: none, or unreadable)."""
        source = self._holder(name)
        return None if source is None else source.mark(name)

    def _writer(self, name: str, beside: str | None) -> SecretSource:
        source = self._holder(name) or (self._holder(beside) if beside is not None else None)
        if source is None:
            raise SecretSourceError(f"{name}: in no source the engine read it from, nowhere to write it")
        return source

    def locked(self, name: str, *, beside: str | None = None) -> contextlib.AbstractContextManager[None]:
        """Held across a read-modify-write of ``name`` in the source :meth:`write` would use
        (a file: an exclusive ``flock``; Secrets Manager: none, re-read after writing)."""
        return self._writer(name, beside).locked(name)

    def age(self, name: str) -> SecretAge:
        """How old the value in ``name``'s source is (undated: in no source, or the environment)."""
        source = self._holder(name)
        return SecretAge.undated() if source is None else source.age(name)

    def read(self, name: str, *, strict: bool = False) -> str | None:
        """``name``'s value in its sources now, not kept (a held credential's new value).
        ``strict``: a source that refused it raises :class:`SecretSourceError` (else: None, as
        for a name found nowhere; a read-modify-write must tell the two apart)."""
        value, _, miss = self._read(name)
        if strict and miss is not None and miss.problem is not None:
            raise SecretSourceError(miss.problem)
        return value

    def adopt(self, name: str, value: str) -> None:
        """Take ``value`` for the resolved credential ``name``, which the last reload held (the
        audit key, once the audit writer rotated to it). Its source is the one it came from."""
        with self._lock:
            if name not in self._names:
                raise KeyError(f"{name} is not a resolved credential")
            self._values[name] = value

    def get(self, name: str) -> str | None:
        """The current value of ``name``; a name never resolved falls back to the environment."""
        with self._lock:
            if name in self._names:
                return self._values.get(name)
        return self._environ.get(name) or None

    def values(self) -> tuple[str, ...]:
        """Every resolved value (for the redactor, which masks them wherever they would appear)."""
        with self._lock:
            return tuple(self._values.values())

    def sources(self) -> dict[str, Source]:
        """Which source each resolved credential came from (never a value)."""
        with self._lock:
            return dict(self._found)

    def environ(self) -> dict[str, str]:
        """The process environment with every resolved credential in it, under its name: what the
        engine's components read their secrets from, whichever source holds them."""
        with self._lock:
            merged = {k: v for k, v in self._environ.items() if k not in self._names}
            merged.update(self._values)
        return merged


_installed: CredentialProvider | None = None


def install_provider(provider: CredentialProvider | None) -> None:
    """Make ``provider`` the process's (the ``run`` command does, once its credentials resolved)."""
    global _installed
    _installed = provider


def current_environ() -> Mapping[str, str]:
    """The installed provider's :meth:`~CredentialProvider.environ`; ``os.environ`` without one."""
    provider = _installed
    return os.environ if provider is None else provider.environ()
