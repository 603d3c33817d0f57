"""Leader election on a coordination.k8s.io Lease, as client-go does it: only the holder reconciles.

A candidate takes the Lease when it is absent, released (no holder) or not renewed for
`duration` seconds by the time this candidate last saw it change (its own clock, so clocks
need not agree). The holder renews every `retry_period`; one that cannot renew within
`renew_deadline` stops acting before anyone else may take over (deadline < duration). A
copy that stops releases the Lease, so the other takes over at once instead of after a
lease duration. kubernetes.leaderelection speaks the same record (a test checks they agree);
this one is asynchronous and can be stopped and released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tradebot_operator.kube import Kube, KubeError

log = logging.getLogger(__name__)


def micro_time(moment: float | None = None) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds."""
    return datetime.fromtimestamp(time.time() if moment is None else moment, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )


@dataclass
class LeaderElector:
    kube: Kube
    namespace: str
    name: str
    identity: str
    duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 2.0
    leading: bool = False
    transitions: int = 0
    _observed: dict[str, Any] | None = field(default=None, repr=False)
    _observed_at: float = field(default=0.0, repr=False)

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def _record(self, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "acquireTime": acquire_time,
            "renewTime": micro_time(),
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """One attempt (blocking; run it in a thread). True when this copy holds the Lease now."""
        try:
            lease = self.kube.request("GET", self.path)
        except KubeError as error:
            if error.status != 404:
                log.warning("cannot read Lease %s/%s: %s", self.namespace, self.name, error)
                return False
            record = self._record(micro_time(), 0)
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": record,
            }
            try:
                self.kube.request("POST", self.path.rsplit("/", 1)[0], body=body)
            except KubeError:
                return False  # someone else created it first
            self._observed, self._observed_at = record, time.monotonic()
            return True
        spec: dict[str, Any] = lease.get("spec") or {}
        if spec != self._observed:
            self._observed, self._observed_at = spec, time.monotonic()
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        if holder and holder != self.identity and self._observed_at + duration > time.monotonic():
            return False  # held, and renewed within its duration as far as we have seen
        ours = holder == self.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        acquired = spec.get("acquireTime") if ours and spec.get("acquireTime") else micro_time()
        lease["spec"] = self._record(str(acquired), transitions)
        try:
            updated = self.kube.request("PUT", self.path, body=lease)  # resourceVersion: optimistic lock
        except KubeError:
            return False
        self._observed, self._observed_at = updated.get("spec") or {}, time.monotonic()
        self.transitions = transitions
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this copy leads (True) or `stop` is set (False)."""
        log.info("%s waits for Lease %s/%s", self.identity, self.namespace, self.name)
        while not stop.is_set():
            if await asyncio.to_thread(self.try_acquire_or_renew):
                self.leading = True
                log.info("%s leads (Lease %s/%s)", self.identity, self.namespace, self.name)
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.retry_period)
        return False

    async def hold(self, stop: asyncio.Event) -> bool:
        """Renew until `stop` (True) or until a renewal fails past the deadline (False: leadership lost)."""
        last = time.monotonic()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.retry_period)
                break
            except TimeoutError:
                pass
            if await asyncio.to_thread(self.try_acquire_or_renew):
                last = time.monotonic()
            elif time.monotonic() - last > self.renew_deadline:
                self.leading = False
                log.error("%s lost the Lease %s/%s", self.identity, self.namespace, self.name)
                return False
        return True

    def release(self) -> None:
        """Give the Lease up so another copy need not wait for it to expire (blocking)."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = self.kube.request("GET", self.path)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"] = {
                **lease["spec"],
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "renewTime": micro_time(),
            }
            self.kube.request("PUT", self.path, body=lease)
            log.info("%s released the Lease %s/%s", self.identity, self.namespace, self.name)
        except KubeError as error:
            log.warning("could not release the Lease: %s", error)
