"""Where the agent's jobs and keys come from, and how they are read again without a restart.

:attr:`ProbeConfig.source` says where the plan is: the collector's signed plan
(:mod:`probes.plan`, cached on disk and used while the collector is unreachable), a local
inventory file, or the config's explicit targets. :meth:`JobSource.refresh` re-reads
everything a reload may change: the config file itself (its targets, inventory path and key
files; other fields need a restart and are logged as such), the key files (a rotated upload
or STAMP key) and the plan.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import trio

from inventory.loader import load
from inventory.topology import Topology
from ixmeter.core import plan as plan_format
from ixmeter.core.errors import IxmeterError
from probes import plan
from probes.config import (
    ConfigError,
    ProbeConfig,
    jobs_from_inventory,
    jobs_from_plan,
    jobs_from_targets,
    load_config,
)
from probes.keys import KeyFileError, read_keys
from probes.scheduler import Job

log = logging.getLogger("ixmeter.probe")
# what a reload applies; any other change of the config file waits for a restart
RELOADABLE = frozenset({"inventory", "site", "carrier", "addresses", "specs", "targets",
                        "key_file", "stamp_keys_file", "traceroute_mode", "plan_refresh_s"})


class JobSource:
    """The agent's plan and keys; :meth:`initial` at start, :meth:`refresh` on reload."""

    def __init__(self, cfg: ProbeConfig, session: str, config_path: Path | None = None) -> None:
        self.cfg, self.session, self.config_path = cfg, session, config_path
        self.keys = self._read_keys()
        self.topology: Topology | None = None
        self.issued_at = 0.0  # of the collector's plan in use

    @property
    def key(self) -> bytes:
        """The newest upload key."""
        return self.keys[0]

    def _read_keys(self) -> list[bytes]:
        try:
            return read_keys(self.cfg.key_file, self.cfg.probe_id)
        except KeyFileError as exc:
            raise ConfigError(str(exc), hint=exc.hint) from None

    def initial(self) -> list[Job]:
        """The jobs known before anything is fetched: the inventory's or the targets', or the
        cached plan's (none if there is no cache yet)."""
        if self.cfg.source == "inventory":
            return self._from_inventory()
        if self.cfg.source == "targets":
            return jobs_from_targets(self.cfg, self.session)
        cached = plan.load(self.cfg.plan_cache_path, self.keys)
        if cached is None:
            return []
        log.info("probe %s: using the cached plan issued at %s", self.cfg.probe_id,
                 cached.get("issued_at"))
        return self._from_served(cached)

    def _from_inventory(self) -> list[Job]:
        assert self.cfg.inventory is not None
        inv = load(self.cfg.inventory)
        self.topology = Topology(inv)
        return jobs_from_inventory(inv, self.cfg, self.session)

    def _from_served(self, served: dict[str, object]) -> list[Job]:
        issued = float(served.get("issued_at", 0.0))  # type: ignore[arg-type]
        if issued < self.issued_at:
            raise plan_format.PlanError(f"the plan issued at {issued} is older than the one "
                                        f"in use ({self.issued_at}): refused")
        jobs = jobs_from_plan(served["plan"], self.cfg, self.session)  # type: ignore[arg-type]
        self.issued_at = issued
        return jobs

    async def refresh(self, client: httpx.AsyncClient) -> list[Job]:
        """Read the config file, the keys and the plan again; the jobs they give. Raises
        :class:`~ixmeter.core.errors.IxmeterError` (nothing applied) when one is unusable."""
        if self.config_path is not None:
            self.cfg = await trio.to_thread.run_sync(self._reread_config)
        self.keys = await trio.to_thread.run_sync(self._read_keys)
        if self.cfg.source == "collector":
            return await self._fetch(client)
        return await trio.to_thread.run_sync(self.initial)

    def _reread_config(self) -> ProbeConfig:
        assert self.config_path is not None
        new = load_config(self.config_path)
        fixed = {k: v for k, v in new.model_dump().items()
                 if k not in RELOADABLE and v != getattr(self.cfg, k)}
        if fixed:
            log.warning("config %s: %s changed; applied at the next restart",
                        self.config_path, ", ".join(sorted(fixed)))
        return self.cfg.model_copy(update={k: getattr(new, k) for k in RELOADABLE})

    async def _fetch(self, client: httpx.AsyncClient) -> list[Job]:
        """The collector's plan, checked, cached; the cached one while it is unreachable."""
        try:
            signed = await plan.fetch(client, self.cfg.collector_url, self.cfg.probe_id,
                                      self.key)
        except httpx.HTTPError as exc:
            log.warning("plan: collector unreachable (%s); keeping the plan in use", exc)
            raise IxmeterError("collector unreachable") from None
        served = plan_format.verify(signed, self.keys)
        jobs = self._from_served(served)
        await trio.to_thread.run_sync(plan.save, self.cfg.plan_cache_path, signed)
        note = plan.rotation_note(served, self.key)
        if note:
            log.warning("keys: %s", note)
        return jobs
