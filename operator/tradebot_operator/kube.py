"""One Kubernetes connection shared by kopf and the operator's own calls.

Both authenticate from the same place: an explicit kubeconfig (the tests pass a
ServiceAccount's), else the in-cluster ServiceAccount, else the default kubeconfig.
Requests go through the official client's transport as plain JSON, so server-side
apply, merge patches and any resource path need no generated model classes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

REQUEST_TIMEOUT = 30


class KubeError(Exception):
    """The API server refused a request; `status` is the HTTP status, `message` its explanation."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> client.Configuration:
    cfg = client.Configuration()
    if kubeconfig or context:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        return cfg
    try:
        config.load_incluster_config(client_configuration=cfg)
    except ConfigException:
        config.load_kube_config(client_configuration=cfg)
    return cfg


def connection_info(cfg: client.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the client's configuration (as kopf's own piggybacking does)."""
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else tuple(parts)
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


class Kube:
    """Thread-safe JSON requests to the API server (the handlers run in kopf's thread pool)."""

    def __init__(self, cfg: client.Configuration) -> None:
        self.api = client.ApiClient(cfg)
        self.requests: Counter[str] = Counter()  # by method: what a benchmark reports

    def close(self) -> None:
        self.api.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        self.requests[method] += 1
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, _, _ = self.api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()) or None,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        # The transport serialises JSON and structured YAML (apply-patch+yaml) bodies itself.
        response = self.api.call_api(method, url, headers, body, _request_timeout=REQUEST_TIMEOUT)
        raw = response.read()
        data = json.loads(raw) if raw else {}
        if not 200 <= response.status < 300:
            raise KubeError(response.status, data.get("reason", ""), data.get("message", str(raw[:300])))
        return data
