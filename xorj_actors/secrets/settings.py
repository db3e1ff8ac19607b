"""``[secrets]``: where the engine's credentials come from, and in which order.

The config names each credential by its environment variable (``[audit] hmac_key_env`` ...);
that name is the credential's name in every source: the variable, a file of that name under
``[secrets.file] dir``, a Secrets Manager secret ``[secrets.aws] prefix`` + name.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

__all__ = ["AwsSourceSettings", "FileSourceSettings", "OwnedKey", "RotationSettings", "SecretsSettings", "Source"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Source(enum.StrEnum):
    """A place a credential is looked for."""

    ENV = "env"
    FILE = "file"
    AWS = "aws"


@dataclass(frozen=True, slots=True)
class FileSourceSettings:
    """``[secrets.file]``: one file per credential, ``dir/NAME``, mode 0600, owned by the engine's user."""

    dir: str = "/run/secrets/xorj"

    def validate(self) -> None:
        if not self.dir:
            raise ValueError("dir: must name a directory")


@dataclass(frozen=True, slots=True)
class AwsSourceSettings:
    """``[secrets.aws]``: AWS Secrets Manager; secret id ``prefix + NAME``, its SecretString.

    Credentials come from the standard AWS environment variables (or the instance role).
    """

    region: str = "us-east-1"
    #: Empty: AWS's own endpoint; a URL: an emulator (ministack in tests) or a VPC endpoint.
    endpoint_url: str = ""
    prefix: str = "xorj/"
    timeout_s: float = 5.0

    def validate(self) -> None:
        if not self.region:
            raise ValueError("region: required")
        if self.endpoint_url and not self.endpoint_url.startswith(("http://", "https://")):
            raise ValueError("endpoint_url: must be an http:// or https:// URL")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s: must be > 0")


class OwnedKey(enum.StrEnum):
    """A key the engine owns (it made it; no third party issued it), which it may rotate itself."""

    #: ``[http] hmac_key_env``: the kill-switch API's HMAC key.
    HTTP = "http"
    #: ``[audit] hmac_key_env``: the audit chain's HMAC key (a rotation opens a key epoch).
    AUDIT = "audit"


_WEEK_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class RotationSettings:
    """``[secrets.rotation]``: the engine rotates the keys it owns on a schedule (docs/SECURITY.md,
    "Key rotation"). Signing keys are never among them (``xorj-actors keys rotate``, an operator's)."""

    #: Off: no scheduled rotation (``check`` still reports ages; ``ctl rotate-key`` still works).
    enabled: bool = False
    #: A key whose value in its source is older than this is rotated.
    interval_s: float = _WEEK_S
    #: ``check`` warns about a key older than this (a schedule that has not run, or a key nobody rotates).
    max_age_s: float = 2 * _WEEK_S
    #: How often the engine looks at its keys' ages (and takes a key another node rotated).
    check_every_s: float = 300.0
    #: The keys the schedule rotates.
    keys: tuple[OwnedKey, ...] = (OwnedKey.HTTP, OwnedKey.AUDIT)

    def validate(self) -> None:
        if not 3600 <= self.interval_s <= 366 * 24 * 3600:
            raise ValueError("interval_s: must be between 3600 (an hour) and 31622400 (a year)")
        if self.max_age_s < self.interval_s:
            raise ValueError("max_age_s: must be >= interval_s (else check warns about every key on schedule)")
        if not 1 <= self.check_every_s <= self.interval_s:
            raise ValueError("check_every_s: must be between 1 and interval_s")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError("keys: a key is listed twice")


@dataclass(frozen=True, slots=True)
class SecretsSettings:
    """``[secrets]``: the sources tried for every credential, first to last.

    The default, the environment alone, is the engine's behaviour before ``[secrets]`` existed.
    """

    order: tuple[Source, ...] = (Source.ENV,)
    #: Credentials required at start in any environment, besides the ones the config requires
    #: (in production: every key, PIN and API key it names).
    required: tuple[str, ...] = ()
    file: FileSourceSettings = field(default_factory=FileSourceSettings)
    aws: AwsSourceSettings = field(default_factory=AwsSourceSettings)
    rotation: RotationSettings = field(default_factory=RotationSettings)

    def validate(self) -> None:
        if not self.order:
            raise ValueError("order: at least one source (env, file, aws)")
        if len(set(self.order)) != len(self.order):
            raise ValueError("order: a source is listed twice")
        for name in self.required:
            if not _ENV_NAME.match(name):
                raise ValueError(f"required: {name!r} is not a credential name (an environment variable name)")
        for section, sub in (("file", self.file), ("aws", self.aws), ("rotation", self.rotation)):
            try:
                sub.validate()
            except ValueError as exc:
                raise ValueError(f"{section}.{exc}") from None
