"""Credentials: one provider for every secret the engine reads (docs/SECURITY.md, "Credential sources").

Sources, tried in ``[secrets] order``: the environment, a 0600 file, AWS Secrets Manager.
"""

from xorj_actors.secrets._age import AgeState, SecretAge
from xorj_actors.secrets._provider import CredentialProvider, Missing, Resolution, current_environ, install_provider
from xorj_actors.secrets._render import render_reload
from xorj_actors.secrets._sources import AwsSource, EnvSource, FileSource, NotWritable, SecretSourceError
from xorj_actors.secrets.settings import (
    AwsSourceSettings, FileSourceSettings, OwnedKey, RotationSettings, SecretsSettings, Source,
)

__all__ = [
    "AgeState",
    "AwsSource",
    "AwsSourceSettings",
    "CredentialProvider",
    "EnvSource",
    "FileSource",
    "FileSourceSettings",
    "Missing",
    "NotWritable",
    "OwnedKey",
    "Resolution",
    "SecretAge",
    "RotationSettings",
    "SecretSourceError",
    "SecretsSettings",
    "Source",
    "current_environ",
    "install_provider",
    "render_reload",
]
