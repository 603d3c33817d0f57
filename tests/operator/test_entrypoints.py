"""How the operator is started and what it recognises as its own children."""

from __future__ import annotations

import logging

import pytest

from tradebot_operator.crd import crd_yaml
from tradebot_operator.handlers import _controller
from tradebot_operator.run import QuietWatchers, main, parse_args


def test_crd_command_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    assert capsys.readouterr().out == crd_yaml()


def test_watch_options() -> None:
    args = parse_args(
        ["-n", "a", "--namespace", "b", "--redis-url", "redis://r:6379", "--health-interval", "2"]
    )
    assert (args.command, args.namespace, args.all_namespaces) == ("run", ["a", "b"], False)
    assert (args.redis_url, args.health_interval) == ("redis://r:6379", 2.0)
    assert parse_args(["run", "-A"]).all_namespaces


def test_only_a_tradingstack_controller_reference_makes_a_child() -> None:
    ours = {
        "apiVersion": "tradebot.dev/v1alpha1",
        "kind": "TradingStack",
        "name": "s",
        "uid": "u",
        "controller": True,
    }
    assert _controller({"ownerReferences": [ours]}) == ours
    assert _controller({"ownerReferences": [{**ours, "controller": False}]}) is None
    assert _controller({"ownerReferences": [{**ours, "apiVersion": "example.com/v1"}]}) is None
    assert _controller({}) is None


def test_per_event_success_lines_are_dropped_but_not_others() -> None:
    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, None, None)

    quiet = QuietWatchers()
    assert not quiet.filter(record("Handler 'watch_child' succeeded."))
    assert quiet.filter(record("Handler 'something_else' succeeded."))
    assert quiet.filter(record("applied generation 2"))
