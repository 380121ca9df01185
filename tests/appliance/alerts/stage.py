"""A real store file with what the raiser would have written: alerts, their events, a child, an incident.

The alerts are inserted as rows of the version 8 schema (the contract between raising and delivering), so
the deliverer's tests stand on their own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from appliance.store.schema import connect
from profiles.categories import Area, Category, CategoryMap, Kind, Risk, Severity

CATEGORIES = CategoryMap(
    {
        "self-harm": Category(
            "self-harm",
            "Self-harm",
            Kind.RISK,
            Area.CONTENT,
            Risk.AGGRESSIVE,
            Severity.CRITICAL,
            description="sites that encourage hurting oneself",
        ),
        "dating": Category("dating", "Dating", Kind.RISK, Area.CONTACT, Risk.SEXUAL, Severity.HIGH),
        "filter-bypass": Category(
            "filter-bypass", "Filter bypass", Kind.RISK, Area.CONDUCT, Risk.VALUES, Severity.HIGH
        ),
    }
)


class Stage:
    """Rows put straight into the store at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: sqlite3.Connection = connect(path)
        self._next = 1000

    def _id(self) -> int:
        self._next += 1
        return self._next

    def child(self, child_id: str, name: str) -> None:
        self.db.execute(
            "INSERT INTO children (id, display_name, profile, pin, created) VALUES (?, ?, '10-12', 'x', 0)",
            (child_id, name),
        )

    def event(
        self,
        ts: float,
        category: str,
        *,
        host: str = "hurt.example",
        url: str = "",
        terms: str = "",
        subject: str = "child:c1",
        notable: bool = True,
    ) -> str:
        """A notable event (a web request when `url` is given, else a DNS question); its feed id."""
        asker, answer = self._id(), self._id()
        self.db.execute(
            "INSERT INTO askers (id, client, subject, via) VALUES (?, '10.0.0.5', ?, 'session')",
            (asker, subject),
        )
        self.db.execute(
            "INSERT INTO answers (id, channel, profile, host, detail, action, severity, category, flagged,"
            " reasons, notable) VALUES (?, ?, '10-12', ?, 'A', 'block', 'critical', ?, 0, '[]', ?)",
            (answer, "http" if url else "dns", host, category, int(notable)),
        )
        if url:
            cur = self.db.execute(
                "INSERT INTO requests (ts, asker, answer, duration_us, method, url, status, bytes, terms,"
                " notable) VALUES (?, ?, ?, 10, 'GET', ?, 403, 0, ?, ?)",
                (ts, asker, answer, url, terms, int(notable)),
            )
            return f"web:{cur.lastrowid}"
        cur = self.db.execute(
            "INSERT INTO events (ts, asker, answer, duration_us, notable) VALUES (?, ?, ?, 10, ?)",
            (ts, asker, answer, int(notable)),
        )
        return f"dns:{cur.lastrowid}"

    def alert(
        self,
        raised: float,
        *,
        severity: str = "critical",
        rule: str = "self-harm-sites",
        kind: str = "category",
        category: str = "self-harm",
        subject: str = "child:c1",
        events: tuple[str, ...] = (),
        incident: int | None = None,
        count: int = 1,
    ) -> int:
        """An open alert, as the raiser writes one; its id."""
        cur = self.db.execute(
            "INSERT INTO alerts (rule, severity, kind, category, subject, profile, throttle, raised, last_ts,"
            " count, incident) VALUES (?, ?, ?, ?, ?, '10-12', ?, ?, ?, ?, ?)",
            (rule, severity, kind, category, subject, f"{rule}|{subject}", raised, raised, count, incident),
        )
        alert = int(cur.lastrowid or 0)
        for event in events:
            self.db.execute(
                "INSERT INTO alert_events (alert, event, ts) VALUES (?, ?, ?)", (alert, event, raised)
            )
        return alert

    def incident(self, opened: float, *, status: str = "new") -> int:
        cur = self.db.execute(
            "INSERT INTO incidents (title, status, severity, area, category, profile, subject, opened,"
            " updated) VALUES ('Self-harm', ?, 'critical', 'content', 'self-harm', '10-12', 'child:c1',"
            " ?, ?)",
            (status, opened, opened),
        )
        return int(cur.lastrowid or 0)

    def acknowledge(self, alert: int, now: float) -> None:
        """What the dashboard does when someone acknowledges (its pending messages cancelled)."""
        self.db.execute(
            "UPDATE alerts SET acknowledged = ?, ack_via = 'dashboard' WHERE id = ?", (now, alert)
        )
        self.db.execute(
            "UPDATE alert_deliveries SET state = 'cancelled' WHERE alert = ? AND state = 'pending'"
            " AND kind IN ('alert', 'escalation')",
            (alert,),
        )

    def close(self) -> None:
        self.db.close()
