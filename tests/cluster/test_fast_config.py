"""The kubeconfig fast path: common kubeconfigs are loaded without the official client
(a 0.3-0.5 s import), and behave exactly as before; everything else falls back to it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from falcoir.cluster import connect
from falcoir.cluster.config import SimpleConfiguration
from falcoir.core.gateway import PODS
from falcoir.errors import ClusterUnreachable
from tests.cluster.conftest import FAST_RETRY
from tests.cluster.fakeapi import Certs, FakeApi, server_ssl_context, write_kubeconfig

ROOT = Path(__file__).resolve().parents[2]


def _edit(
    path: Path, cluster: dict[str, Any] | None = None, user: dict[str, Any] | None = None
) -> Path:
    doc = json.loads(path.read_text())
    if cluster is not None:
        doc["clusters"][0]["cluster"] = cluster
    if user is not None:
        doc["users"][0]["user"] = user
    path.write_text(json.dumps(doc))
    return path


def test_token_kubeconfig_does_not_import_the_official_client(
    api: FakeApi, kubeconfig: Path
) -> None:
    api.add_pod("prod", "web-1")
    script = (
        "import sys\n"
        "from falcoir.cluster import connect\n"
        "from falcoir.core.gateway import PODS\n"
        "gw = connect(sys.argv[1])\n"
        "print(gw.get(PODS, 'web-1', 'prod')['metadata']['name'])\n"
        "print(gw.exec('prod', 'web-1', None, ['echo', 'x']).stdout.decode().strip())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HTTPS_PROXY", None)
    env.pop("https_proxy", None)
    out = subprocess.run(
        [sys.executable, "-c", script, str(kubeconfig)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    assert out == ["web-1", "x", "[]"]


def test_ca_file_and_ca_data_both_verify(tls_api: FakeApi, certs: Certs, tmp_path: Path) -> None:
    tls_api.add_pod("prod", "web-1")
    by_file = connect(str(write_kubeconfig(tmp_path / "f", tls_api.url, ca=certs.ca)))
    assert isinstance(by_file.configuration, SimpleConfiguration)
    data = base64.b64encode(certs.ca.read_bytes()).decode()
    path = _edit(
        write_kubeconfig(tmp_path / "d", tls_api.url),
        cluster={"server": tls_api.url, "certificate-authority-data": data},
    )
    by_data = connect(str(path))
    assert isinstance(by_data.configuration, SimpleConfiguration)
    for gw in (by_file, by_data):
        assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
        assert gw.exec("prod", "web-1", None, ["echo", "ca"]).stdout == b"ca\n"


def test_relative_ca_path_is_relative_to_the_kubeconfig(
    tls_api: FakeApi, certs: Certs, tmp_path: Path
) -> None:
    tls_api.add_pod("prod", "web-1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ca.crt").write_bytes(certs.ca.read_bytes())
    path = _edit(
        write_kubeconfig(tmp_path / "sub" / "k", tls_api.url),
        cluster={"server": tls_api.url, "certificate-authority": "ca.crt"},
    )
    gw = connect(str(path))
    assert gw.configuration.ssl_ca_cert == str(tmp_path / "sub" / "ca.crt")
    assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"


def test_a_stranger_ca_still_fails_and_insecure_skip_still_skips(
    tls_api: FakeApi, certs: Certs, tmp_path: Path
) -> None:
    tls_api.add_pod("prod", "web-1")
    strict = connect(
        str(write_kubeconfig(tmp_path / "s", tls_api.url, ca=certs.other_ca)), retry=FAST_RETRY
    )
    assert isinstance(strict.configuration, SimpleConfiguration)
    with pytest.raises(ClusterUnreachable, match=r"TLS|SSL|certificate"):
        strict.get(PODS, "web-1", "prod")
    path = _edit(
        write_kubeconfig(tmp_path / "i", tls_api.url),
        cluster={"server": tls_api.url, "insecure-skip-tls-verify": True},
    )
    loose = connect(str(path), retry=FAST_RETRY)
    assert isinstance(loose.configuration, SimpleConfiguration)
    assert loose.configuration.verify_ssl is False
    assert loose.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
    assert loose.exec("prod", "web-1", None, ["echo", "i"]).stdout == b"i\n"


def test_tls_server_name_is_used_for_the_certificate(
    tls_api: FakeApi, certs: Certs, tmp_path: Path
) -> None:
    tls_api.add_pod("prod", "web-1")
    wrong = _edit(
        write_kubeconfig(tmp_path / "w", tls_api.url, ca=certs.ca),
        cluster={
            "server": tls_api.url,
            "certificate-authority": str(certs.ca),
            "tls-server-name": "not-in-the-certificate.example",
        },
    )
    gw = connect(str(wrong), retry=FAST_RETRY)
    assert isinstance(gw.configuration, SimpleConfiguration)
    with pytest.raises(ClusterUnreachable, match=r"TLS|SSL|certificate|hostname"):
        gw.get(PODS, "web-1", "prod")


def test_client_certificate_files_use_the_fast_path(certs: Certs, tmp_path: Path) -> None:
    api = FakeApi(ssl_context=server_ssl_context(certs, client_certs=True)).start()
    try:
        api.add_pod("prod", "web-1")
        user = {"client-certificate": str(certs.client_cert), "client-key": str(certs.client_key)}
        gw = connect(str(write_kubeconfig(tmp_path / "k", api.url, ca=certs.ca, user_entry=user)))
        assert isinstance(gw.configuration, SimpleConfiguration)
        assert gw.auth_headers() == {}
        assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
        assert api.cert_users and all("cert-user" in u for u in api.cert_users)
    finally:
        api.stop()


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "x"}},
        {"auth-provider": {"name": "oidc", "config": {}}},
        {"username": "u", "password": "p"},
        {"tokenFile": "/var/run/token"},
        {"client-certificate-data": "eA==", "client-key-data": "eA=="},
        {"token": "t", "as": "someone-else"},
        {"client-certificate": "/c.crt"},
    ],
)
def test_anything_else_goes_through_the_official_loader(
    tmp_path: Path, user: dict[str, Any]
) -> None:
    from falcoir.cluster.config import _simple_configuration

    doc = json.loads(
        write_kubeconfig(tmp_path / "k", "https://127.0.0.1:1", user_entry=user).read_text()
    )
    assert _simple_configuration(doc, doc["contexts"][0]["context"], tmp_path) is None


def test_proxies_and_odd_clusters_go_through_the_official_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from falcoir.cluster.config import _simple_configuration

    doc = json.loads(write_kubeconfig(tmp_path / "k", "https://127.0.0.1:1").read_text())
    ctx = doc["contexts"][0]["context"]
    assert _simple_configuration(doc, ctx, tmp_path) is not None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert _simple_configuration(doc, ctx, tmp_path) is None
    monkeypatch.delenv("HTTPS_PROXY")
    for cluster in (
        {"server": "https://127.0.0.1:1", "proxy-url": "http://proxy:3128"},
        {"server": "https://127.0.0.1:1", "certificate-authority-data": "not base64!"},
        {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": "yes"},
        {"server": "unix:///var/run/api.sock"},
        {},
    ):
        doc["clusters"][0]["cluster"] = cluster
        assert _simple_configuration(doc, ctx, tmp_path) is None, cluster


def test_exec_plugin_still_works_through_the_fallback(api: FakeApi, tmp_path: Path) -> None:
    plugin = tmp_path / "get-token"
    plugin.write_text(
        "#!/bin/sh\n"
        'echo \'{"apiVersion": "client.authentication.k8s.io/v1beta1", '
        '"kind": "ExecCredential", "status": {"token": "t0k3n"}}\'\n'
    )
    plugin.chmod(0o755)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "interactiveMode": "Never",
        }
    }
    gw = connect(str(write_kubeconfig(tmp_path / "k", api.url, user_entry=user)), retry=FAST_RETRY)
    assert not isinstance(gw.configuration, SimpleConfiguration)
    api.add_pod("prod", "web-1")
    assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
