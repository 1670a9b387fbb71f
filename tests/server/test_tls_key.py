"""The API's TLS key file: refused when others may read it (a config error, exit 78), fine when only its group may
(Debian's ssl-cert group reads the keys in /etc/ssl/private)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nutbridge.config import load, with_overrides
from nutbridge.errors import ConfigError
from nutbridge.server.app import tls_context
from tests.helpers import free_port, run


def https_config(tmp_path: Path, certificate: tuple[Path, Path], port_file: Path) -> Path:
    cert, key = certificate
    conf = tmp_path / "nutbridge.toml"
    conf.write_text(
        f'[api]\nlisten = "127.0.0.1:{free_port()}"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
        f'[datalog]\nfolder = "{tmp_path / "log"}"\n[nut]\nport_file = "{port_file}"\n[source]\nkind = "simulator"\n'
    )
    return conf


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400], ids=oct)
def test_a_key_only_its_owner_and_group_read_is_used(
    tmp_path: Path, certificate: tuple[Path, Path], port_file: Path, mode: int
) -> None:
    cert, key = certificate
    key.chmod(mode)
    config = with_overrides(load(https_config(tmp_path, certificate, port_file)))
    assert config.api.tls_key == key
    assert tls_context(cert, key) is not None


@pytest.mark.parametrize("mode", [0o644, 0o604], ids=oct)
def test_a_key_others_may_read_is_refused(
    tmp_path: Path, certificate: tuple[Path, Path], port_file: Path, mode: int
) -> None:
    _, key = certificate
    key.chmod(mode)
    conf = https_config(tmp_path, certificate, port_file)
    with pytest.raises(ConfigError, match=f"{conf}: api.tls_key {key} is readable by others .*run 'chmod o-r {key}'"):
        with_overrides(load(conf))


def test_the_daemon_exits_78_on_a_key_others_may_read(
    tmp_path: Path, port_file: Path, certificate: tuple[Path, Path]
) -> None:
    _, key = certificate
    key.chmod(0o644)
    done = run("-c", str(https_config(tmp_path, certificate, port_file)))
    assert done.returncode == 78, done.stderr
    assert f"api.tls_key {key} is readable by others (mode 0644); run 'chmod o-r {key}'" in done.stderr
    assert "Traceback" not in done.stderr
