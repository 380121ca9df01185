"""The audit log: every staff view of a child's data and every change, who and when."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class AuditEntry:
    ts: float
    username: str
    action: str
    subject: str
    detail: str


def record(
    db: sqlite3.Connection,
    ts: float,
    staff_id: int | None,
    username: str,
    action: str,
    subject: str,
    detail: str = "",
) -> None:
    """Append one entry (in the caller's transaction, if one is open)."""
    db.execute(
        "INSERT INTO audit (ts, staff, username, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (ts, staff_id, username, action, subject, detail),
    )


def entries(
    db: sqlite3.Connection,
    *,
    limit: int = 200,
    before: float | None = None,
    username: str = "",
    subject: str = "",
) -> list[AuditEntry]:
    """The newest entries first, optionally one member of staff's or about one subject."""
    where: list[str] = ["1"]
    args: list[object] = []
    if before is not None:
        where.append("ts < ?")
        args.append(before)
    if username:
        where.append("username = ?")
        args.append(username)
    if subject:
        where.append("subject = ?")
        args.append(subject)
    rows = db.execute(
        f"SELECT ts, username, action, subject, detail FROM audit WHERE {' AND '.join(where)}"
        " ORDER BY ts DESC, id DESC LIMIT ?",
        (*args, limit),
    )
    return [AuditEntry(*r) for r in rows]
