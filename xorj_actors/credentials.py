"""The engine's credentials, per its config: which it names, which it requires, and resolving them.

The config names each credential by its environment variable; :mod:`xorj_actors.secrets` finds
its value in the ``[secrets] order`` sources. The commands that read secrets (``run``, ``check``,
``audit``) open one provider here, so a key in a file or in Secrets Manager works for all of them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from xorj_actors.check import CheckResult, secret_env_names
from xorj_actors.config import Config
from xorj_actors.secrets import CredentialProvider, Resolution, install_provider

__all__ = ["check_credentials", "credential_environ", "missing_report", "open_credentials", "required_secret_names"]


def required_secret_names(config: Config) -> tuple[str, ...]:
    """Credentials the engine does not start without.

    In production: every HMAC key, PIN and API key the config names (what ``check`` requires),
    and the Slack signing secret with ``[slack]``. In any environment: the Jupiter API key when
    ``[jupiter] base_url`` is set (no request is answered without it) and ``[secrets] required``.
    Development keeps its fallbacks (the development audit key, the HTTP API off).
    """
    names: list[str] = []
    jup = config.jupiter
    if jup.base_url and jup.api_key_env:
        names.append(jup.api_key_env)
    if config.engine.environment == "production":
        names += [*config.kill_switch.recovery_key_envs, config.audit.hmac_key_env, config.http.hmac_key_env]
        names += [k.pkcs11.pin_env for k in config.signers.keys if k.backend == "pkcs11"]
        names.append(config.strategy.api_key_env)
        if config.slack is not None:
            names.append(config.slack.signing_secret_env)
    return tuple(dict.fromkeys((*names, *config.secrets.required)))


def open_credentials(
    config: Config, environ: Mapping[str, str] | None = None, *, install: bool = False
) -> tuple[CredentialProvider, Resolution]:
    """Resolve every credential ``config`` names; the resolution lists the required ones missing.

    With ``install`` (``run``: the process is the engine's), the provider becomes the process's:
    the audit key and the database password are read through it wherever no environment is
    passed. A command that only reads passes ``provider.environ()`` instead.
    """
    provider = CredentialProvider(config.secrets, os.environ if environ is None else environ)
    proof_key = config.proofs.key
    proof_pin = (proof_key.pkcs11.pin_env,) if proof_key.backend == "pkcs11" else ()
    names = (*secret_env_names(config), *config.kill_switch.recovery_key_envs, *proof_pin)
    resolution = provider.resolve(names, required_secret_names(config))
    if install:
        install_provider(provider)
    return provider, resolution


def credential_environ(config: Config) -> dict[str, str]:
    """The environment with every credential ``config`` names, from whichever source holds it:
    for a command that reads secrets once (``audit verify``, ``proof show``...)."""
    return open_credentials(config)[0].environ()


def check_credentials(config: Config) -> tuple[dict[str, str], CheckResult]:
    """For ``check``: the environment with every credential found, and the ``key_ages`` check on
    the same sources. Each credential a source refused (a file's mode, an AWS error) is said on
    stderr (``check`` then reports it as not set)."""
    from xorj_actors.key_rotation import check_key_ages

    provider, resolution = open_credentials(config)
    for m in resolution.missing:
        if m.problem is not None:
            print(f"xorj-actors check: credential {m.describe()}", file=sys.stderr)
    return provider.environ(), check_key_ages(config, provider)


def missing_report(resolution: Resolution) -> str:
    """The missing credentials, one a line, each with where it was looked for (never a value)."""
    lines = [f"{len(resolution.missing)} credential(s) missing or refused:"]
    lines += [f"  {m.describe()}" for m in resolution.missing]
    return "\n".join(lines)
