"""infra/hooks/postprovision.sh, run for real against a stand-in `az` keeping a vault in a folder.

What matters: it creates the hash, sealing and signing keys the app accepts; it never replaces a
secret that exists (a new hash key orphans every visit); when it cannot list the vault it writes
nothing; and no key material ever appears on a command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lib.bootstrap import split_pem
from lib.sealing import parse_keys
from lib.smart.keys import KeySet
from tests.infra.bicep import INFRA

HOOK = INFRA / "hooks" / "postprovision.sh"

FAKE_AZ = """#!{python}
import json, os, pathlib, shutil, sys
vault = pathlib.Path(os.environ["FAKE_VAULT"])
args = sys.argv[1:]
with open(vault.parent / "calls.log", "a") as log:
    log.write(json.dumps(args) + "\\n")
def opt(name):
    return args[args.index(name) + 1]
if args[:3] == ["keyvault", "secret", "list"]:
    if os.environ.get("FAKE_AZ_DENY"):
        sys.exit("Forbidden: caller is not authorized")
    print("\\n".join(sorted(p.name for p in vault.iterdir())))
elif args[:3] == ["keyvault", "secret", "set"]:
    shutil.copyfile(opt("--file"), vault / opt("--name"))
else:
    sys.exit("unexpected az call: " + " ".join(args))
"""


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    (tmp_path / "bin").mkdir()
    az = tmp_path / "bin" / "az"
    az.write_text(FAKE_AZ.format(python=sys.executable))
    az.chmod(0o755)
    folder = tmp_path / "vault"
    folder.mkdir()
    return folder


def run(vault: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {
        "PATH": f"{vault.parent / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "FAKE_VAULT": str(vault),
        "AZURE_KEY_VAULT_NAME": "kv-test",
        "KEY_VAULT_RETRY_SECONDS": "0",
        **env,
    }
    return subprocess.run(
        ["sh", str(HOOK)], env=environ, capture_output=True, text=True, timeout=120
    )


def calls(vault: Path) -> list[str]:
    log = vault.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_creates_keys_the_app_accepts(vault):
    done = run(vault, EHR_SECRET_NAMES="EPIC,CERNER_PROD")
    assert done.returncode == 0, done.stderr
    hash_key = (vault / "connector-hash-key").read_text()
    assert len(hash_key) >= 32 and "\n" not in hash_key
    assert len(parse_keys((vault / "connector-sealing-keys").read_text(), hash_key=hash_key)) == 1
    keys = KeySet.from_pems(split_pem((vault / "connector-signing-keys").read_text()))
    assert [k.alg for k in keys.keys] == ["RS384", "ES384"]
    # What only their owners can give is named, with the command, never made up.
    for name in ("entra-client-secret", "ehr-secret-epic", "ehr-secret-cerner-prod"):
        assert f"--name {name} " in done.stdout
        assert not (vault / name).exists()


def test_names_the_graph_certificate_until_it_exists(vault):
    done = run(vault, GRAPH_NOTIFICATION_CERTIFICATE_NAME="graph-notifications")
    assert done.returncode == 0, done.stderr
    assert (
        "certificate create --vault-name" in done.stdout
        and "-n graph-notifications " in done.stdout
    )
    (vault / "graph-notifications").write_text("-----BEGIN PRIVATE KEY-----")
    again = run(vault, GRAPH_NOTIFICATION_CERTIFICATE_NAME="graph-notifications")
    assert "certificate create" not in again.stdout


def test_never_replaces_a_secret(vault):
    assert run(vault).returncode == 0
    before = {p.name: p.read_text() for p in vault.iterdir()}
    first_calls = len(calls(vault))
    again = run(vault)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_text() for p in vault.iterdir()} == before
    assert not any('"set"' in c for c in calls(vault)[first_calls:])
    assert again.stdout.count("kept ") == 4


def test_a_vault_it_cannot_read_gets_nothing_written(vault):
    done = run(vault, FAKE_AZ_DENY="1", KEY_VAULT_RETRIES="2")
    assert done.returncode != 0
    assert "nothing was written" in done.stderr
    assert list(vault.iterdir()) == []
    assert all('"list"' in c for c in calls(vault)) and len(calls(vault)) == 2


def test_key_material_never_reaches_a_command_line(vault):
    assert run(vault).returncode == 0
    log = "\n".join(calls(vault))
    for secret in vault.iterdir():
        for line in secret.read_text().splitlines():
            if len(line) >= 16 and "-----" not in line:
                assert line not in log, secret.name
