"""The TradingStack operator: reconciles a `TradingStack` into the Kubernetes objects of one TradeBot."""

from __future__ import annotations

GROUP = "tradebot.dev"
VERSION = "v1alpha1"
PLURAL = "tradingstacks"
KIND = "TradingStack"
API_VERSION = f"{GROUP}/{VERSION}"

# The one field manager of every server-side apply, so ownership of fields is stable across restarts.
FIELD_MANAGER = "tradebot-operator"
MANAGED_BY = "tradebot-operator"
# kopf's own bookkeeping (handler progress, last-handled spec) lives in annotations under this prefix.
KOPF_PREFIX = "kopf.tradebot.dev"
