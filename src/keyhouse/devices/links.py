"""Which DeviceLink reaches which lock: chosen per lock by its ``link`` column."""

from __future__ import annotations

from sqlalchemy import select

from keyhouse.devices.link import DeviceLink, DeviceUnreachable
from keyhouse.store.database import Database
from keyhouse.store.models import Smartlock


class Links:
    """The links of this process by kind ("virtual" today; Nuki's cloud and MQTT later)."""

    def __init__(self, db: Database, links: dict[str, DeviceLink]) -> None:
        self.db = db
        self._links = links
        self._kinds: dict[int, str] = {}  # a lock's link kind never changes once it exists

    def use(self, kind: str, link: DeviceLink) -> None:
        """Reach the locks of ``kind`` through ``link`` from now on."""
        self._links[kind] = link

    def of(self, smartlock_id: int) -> DeviceLink:
        kind = self._kinds.get(smartlock_id)
        if kind is None:
            with self.db.read() as session:
                kind = session.scalar(select(Smartlock.link).where(Smartlock.id == smartlock_id))
            if kind is None:
                raise DeviceUnreachable(f"smartlock {smartlock_id} does not exist")
            self._kinds[smartlock_id] = kind
        link = self._links.get(kind)
        if link is None:
            raise DeviceUnreachable(f"smartlock {smartlock_id}: no link of kind {kind!r} here")
        return link
