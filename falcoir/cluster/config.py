"""Where the cluster is and who we are: kubeconfig (or in-cluster) to a client Configuration.

Every failure here is the user's input (a missing file, an unknown context, a file that
is not a kubeconfig) and becomes :class:`falcoir.errors.InputError` naming the file and
the context, so the CLI exits 2 with a message that says what to fix.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from falcoir.errors import InputError

# The official client (``kubernetes``, a 0.3-0.5 s import) loads what the fast path of
# ``_simple_configuration`` does not cover; it is imported only then.

IN_CLUSTER = "in-cluster"
DEFAULT_KUBECONFIG = "~/.kube/config"


@dataclass(frozen=True)
class ClusterConfig:
    """A loaded client configuration plus what we say about it in messages."""

    configuration: Any
    """``kubernetes.client.Configuration`` (host, TLS files, token or refresh hook)."""
    context: str
    server: str
    user: str
    """The kubeconfig user entry's name (or the service account, in a cluster)."""
    source: str
    """The kubeconfig path(s) read, or ``in-cluster``."""


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def _existing(paths: str) -> list[str]:
    found = (Path(p).expanduser() for p in paths.split(os.pathsep) if p)
    return [str(p) for p in found if p.is_file()]


def load(kubeconfig: str | None = None, context: str | None = None) -> ClusterConfig:
    """Resolve ``kubeconfig`` (else ``$KUBECONFIG``, else ``~/.kube/config``, else the
    in-cluster service account) and ``context`` into a client configuration."""
    explicit = kubeconfig or os.environ.get("KUBECONFIG") or None
    if explicit is not None:
        found = _existing(explicit)
        if not found:
            raise InputError(
                f"kubeconfig {explicit} not found",
                hint="pass --kubeconfig PATH (or set KUBECONFIG) to a readable kubeconfig file",
            )
        return _from_kubeconfig(os.pathsep.join(found), context)
    default = str(Path(DEFAULT_KUBECONFIG).expanduser())
    if Path(default).is_file():
        return _from_kubeconfig(default, context)
    if context is not None:
        raise InputError(
            f"--context {context} given, but there is no kubeconfig ({DEFAULT_KUBECONFIG} "
            "does not exist and KUBECONFIG is not set)",
            hint="pass --kubeconfig PATH",
        )
    return _in_cluster()


def _read_contexts(
    path: str, docs: list[dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], str]:
    """(contexts, current-context) over the files of ``path``, merged the way kubectl
    merges them: the first file that names a context or a current-context wins.
    ``docs`` receives each file's document."""
    contexts: list[dict[str, Any]] = []
    seen: set[str] = set()
    current = ""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for one in path.split(os.pathsep):
        try:
            text = Path(one).expanduser().read_text(encoding="utf-8")
            doc = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InputError(
                f"cannot read kubeconfig {one}: {_short(exc)}",
                hint="check the file is a kubeconfig (kubectl config view --kubeconfig PATH)",
            ) from exc
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise InputError(f"cannot read kubeconfig {one}: not a kubeconfig (not a mapping)")
        if docs is not None:
            docs.append(doc)
        current = current or str(doc.get("current-context") or "")
        for ctx in doc.get("contexts") or []:
            if isinstance(ctx, dict) and ctx.get("name") and str(ctx["name"]) not in seen:
                seen.add(str(ctx["name"]))
                contexts.append(ctx)
    return contexts, current


def _from_kubeconfig(path: str, context: str | None) -> ClusterConfig:
    docs: list[dict[str, Any]] = []
    contexts, current = _read_contexts(path, docs)
    available = ", ".join(str(c["name"]) for c in contexts) or "none"
    wanted = context or current
    if not wanted:
        raise InputError(
            f"kubeconfig {path} sets no current-context",
            hint=f"pass --context NAME (contexts in the file: {available})",
        )
    match = [c for c in contexts if str(c["name"]) == wanted]
    if not match:
        raise InputError(
            f"context {wanted} not found in kubeconfig {path}",
            hint=f"contexts in the file: {available}",
        )
    chosen = match[0]
    name = str(chosen.get("name"))
    body = chosen.get("context")
    user = str(body.get("user") or "") if isinstance(body, dict) else ""
    if len(docs) == 1 and isinstance(body, dict):
        simple = _simple_configuration(docs[0], body, Path(path).expanduser().parent)
        if simple is not None:
            return ClusterConfig(simple, name, simple.host, user, path)
    from kubernetes.client import Configuration
    from kubernetes.config import load_kube_config

    cfg = Configuration()
    try:
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=name, client_configuration=cfg, persist_config=False
        )
    except Exception as exc:  # ConfigException, a bad certificate file, an exec plugin
        raise InputError(
            f"cannot use context {name} of kubeconfig {path}: {_short(exc)}",
            hint="check its cluster, user and certificate entries",
        ) from exc
    if not cfg.host:
        raise InputError(f"context {name} of kubeconfig {path} names no server")
    return ClusterConfig(cfg, name, str(cfg.host), user, path)


def _service_account_name(token_file: str) -> str:
    """``system:serviceaccount:ns:name`` from the token's ``sub`` claim (unverified: it
    is only a name for messages when the API cannot tell us who we are)."""
    try:
        token = Path(token_file).read_text(encoding="ascii").strip()
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("sub") or "serviceaccount")
    except (OSError, IndexError, ValueError):
        return "serviceaccount"


def _in_cluster() -> ClusterConfig:
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, incluster_config

    cfg = Configuration()
    try:
        incluster_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise InputError(
            f"no kubeconfig found ({DEFAULT_KUBECONFIG} does not exist, KUBECONFIG is not "
            f"set) and not running inside a cluster ({_short(exc)})",
            hint="pass --kubeconfig PATH or set KUBECONFIG",
        ) from exc
    user = _service_account_name(incluster_config.SERVICE_TOKEN_FILENAME)
    return ClusterConfig(cfg, IN_CLUSTER, str(cfg.host), user, IN_CLUSTER)


# -- the fast path -------------------------------------------------------------------

_CLUSTER_KEYS = frozenset(
    {
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "extensions",
    }
)
_USER_KEYS = frozenset({"token", "client-certificate", "client-key", "extensions"})


@dataclass
class SimpleConfiguration:
    """The part of ``kubernetes.client.Configuration`` the gateway reads, for the
    common kubeconfig: a server, its CA (file or data), and a static bearer token or
    a client certificate and key in files. Anything else (exec plugins, auth
    providers, embedded client keys, basic auth, proxies, token files that rotate,
    in-cluster) goes through the official loader."""

    host: str
    ssl_ca_cert: str | None = None
    ca_cert_data: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify_ssl: bool = True
    tls_server_name: str | None = None
    token: str | None = None
    assert_hostname: bool | None = None
    proxy: str | None = None
    no_proxy: str | None = None

    def auth_settings(self) -> dict[str, Any]:
        if not self.token:
            return {}
        return {"BearerToken": {"in": "header", "key": "authorization", "value": self.token}}


def _named(entries: Any, name: str, key: str) -> dict[str, Any] | None:
    """The ``key`` mapping of the first entry called ``name`` (kubectl: first wins)."""
    for entry in entries or []:
        if isinstance(entry, dict) and str(entry.get("name")) == name:
            body = entry.get(key)
            return body if isinstance(body, dict) else None
    return None


def _simple_configuration(
    doc: dict[str, Any], context: dict[str, Any], base: Path
) -> SimpleConfiguration | None:
    """The configuration for ``context`` of ``doc`` when it is a common one (see
    :class:`SimpleConfiguration`), else ``None`` (the official loader decides)."""
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return None  # the official client's proxy handling applies
    cluster = _named(doc.get("clusters"), str(context.get("cluster") or ""), "cluster")
    user = _named(doc.get("users"), str(context.get("user") or ""), "user")
    if user is None and not context.get("user"):
        user = {}
    if cluster is None or user is None:
        return None
    if not set(cluster) <= _CLUSTER_KEYS or not set(user) <= _USER_KEYS:
        return None
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        return None
    values = [
        cluster.get("certificate-authority"),
        cluster.get("certificate-authority-data"),
        cluster.get("tls-server-name"),
        user.get("token"),
        user.get("client-certificate"),
        user.get("client-key"),
    ]
    if any(v is not None and (not isinstance(v, str) or not v) for v in values):
        return None
    ca_file, ca_data, server_name, token, cert, key = values
    if bool(cert) != bool(key) or (token and cert):
        return None
    insecure = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        return None

    def resolve(p: str | None) -> str | None:
        return None if p is None else str(base / Path(p).expanduser())

    pem: str | None = None
    if ca_data is not None:
        try:
            pem = base64.b64decode(ca_data, validate=True).decode("ascii")
        except ValueError:
            return None  # the official loader says what is wrong with it
    return SimpleConfiguration(
        host=server.rstrip("/"),
        ssl_ca_cert=None if pem is not None else resolve(ca_file),
        ca_cert_data=pem,
        cert_file=resolve(cert),
        key_file=resolve(key),
        verify_ssl=not insecure,
        tls_server_name=server_name,
        token=f"Bearer {token}" if token else None,
    )
