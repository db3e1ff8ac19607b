"""pytest fixtures: a private SoftHSM2 token (registered in tests/conftest.py).

SoftHSM reads ``SOFTHSM2_CONF`` and lists its tokens once, when the module is first initialised
in a process, and python-pkcs11 keeps the module loaded: so the token is made once per session,
before any test loads the module, and ``SOFTHSM2_CONF`` stays set for the whole session (child
processes, such as ``xorj-actors keys``, inherit it). Tests tell their keys apart by label.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import service_unavailable

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True, slots=True)
class SoftHsmToken:
    """An initialised token: where it is and how to log in."""

    module: str
    label: str
    pin: str
    pin_env: str
    conf: Path

    @property
    def environ(self) -> dict[str, str]:
        """The PIN in the environment variable the settings name."""
        return {self.pin_env: self.pin}

    def settings_toml(self, label_prefix: str) -> str:
        """The ``[signers.keys.pkcs11]`` lines of vault keys labelled ``<label_prefix><vault id>`` in this token."""
        return (
            f'pkcs11.module = "{self.module}"\npkcs11.token_label = "{self.label}"\n'
            f'pkcs11.label_prefix = "{label_prefix}"\npkcs11.pin_env = "{self.pin_env}"\n'
        )


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    """A fresh SoftHSM2 token in a private directory, for the whole session."""
    util = shutil.which("softhsm2-util")
    if util is None or not Path(SOFTHSM_MODULE).exists():
        service_unavailable(f"SoftHSM2 is not installed (softhsm2-util, {SOFTHSM_MODULE})")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir(mode=0o700)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    token = SoftHsmToken(SOFTHSM_MODULE, "xorj-test", uuid.uuid4().hex[:12], "XORJ_TEST_HSM_PIN", conf)
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        subprocess.run(
            [util, "--init-token", "--free", "--label", token.label, "--so-pin", uuid.uuid4().hex[:12],
             "--pin", token.pin],
            check=True,
            capture_output=True,
            timeout=30,
        )
        yield token
    finally:
        if before is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = before


@pytest.fixture
def hsm_key_label() -> str:
    """A key label prefix no other test uses."""
    return f"k{uuid.uuid4().hex[:10]}-"
