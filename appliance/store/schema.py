"""The event store's SQLite file: its schema, in numbered migrations, and how it is opened.

One file in the data directory, in WAL mode: the DNS filter's and every proxy worker's writer processes
append events, the dashboard reads and keeps children, devices, sessions, staff, incidents and the audit
log. `open_store` brings any older file up to SCHEMA_VERSION in one transaction per step, so a reader
never sees a half-made schema and a power cut mid-migration leaves the previous version whole.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filters.errors import ApplianceError


class StoreError(ApplianceError):
    """The store's SQLite file cannot be opened, is of a newer schema, or refused a change."""


# Version 2: the query log of the DNS filter (issue 4) and the proxy's web requests (issue 5).
_V2 = """
CREATE TABLE IF NOT EXISTS askers (
    id      INTEGER PRIMARY KEY,
    client  TEXT NOT NULL,  -- the device's address
    subject TEXT NOT NULL,  -- child:<id>, device:<name> or guest; never a child's name
    via     TEXT NOT NULL   -- how the profile was found: session, device-mac, device-ip, guest
);
CREATE TABLE IF NOT EXISTS answers (
    id       INTEGER PRIMARY KEY,
    channel  TEXT    NOT NULL,  -- dns, tls or http
    profile  TEXT    NOT NULL,
    host     TEXT    NOT NULL,
    detail   TEXT    NOT NULL,  -- dns: the query type (A, AAAA, HTTPS, ...)
    action   TEXT    NOT NULL,  -- allow, block, rewrite, flag
    severity TEXT    NOT NULL,  -- '' when none
    category TEXT    NOT NULL,  -- the first reason's category, '' when none
    flagged  INTEGER NOT NULL,  -- 1 when staff should look at it
    reasons  TEXT    NOT NULL   -- JSON: [{step, effect, detail, category, severity, source, line, rule}]
);
CREATE TABLE IF NOT EXISTS events (
    ts          REAL    NOT NULL,  -- when, in seconds since 1970 (UTC)
    asker       INTEGER NOT NULL REFERENCES askers (id),
    answer      INTEGER NOT NULL REFERENCES answers (id),
    duration_us INTEGER NOT NULL   -- time taken to answer
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (ts);
CREATE TABLE IF NOT EXISTS requests (
    ts          REAL    NOT NULL,  -- a web request (channel http) or a TLS connection passed through (tls)
    asker       INTEGER NOT NULL REFERENCES askers (id),
    answer      INTEGER NOT NULL REFERENCES answers (id),
    duration_us INTEGER NOT NULL,
    method      TEXT    NOT NULL,  -- GET, POST, ...; CONNECT for a TLS connection
    url         TEXT    NOT NULL,  -- as much as the privacy rule keeps (docs/proxy.md)
    status      INTEGER NOT NULL,  -- the HTTP status the child got; 0 when none (cut, failed)
    bytes       INTEGER NOT NULL,  -- body bytes sent to the child
    terms       TEXT    NOT NULL   -- the search terms, only when flagged
);
CREATE INDEX IF NOT EXISTS requests_by_time ON requests (ts);
-- Each writer process names its rows by its own keys above a base it reserves here: several writers
-- (the DNS filter's, each proxy worker's) share the file without ever choosing the same id.
CREATE TABLE IF NOT EXISTS key_ranges (
    base    INTEGER PRIMARY KEY,
    claimed REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS daily_counts (
    day      TEXT    NOT NULL,  -- the centre's local date, YYYY-MM-DD
    channel  TEXT    NOT NULL,
    profile  TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    category TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (day, channel, profile, action, category)
) WITHOUT ROWID;
"""

# Version 3: the event store. Blocked and flagged events are marked `notable` (the staff's feed walks a
# partial index of them, newest first); the people, sessions, staff, incidents and the audit log.
_V3 = """
ALTER TABLE answers ADD COLUMN notable INTEGER NOT NULL DEFAULT 0;
UPDATE answers SET notable = 1 WHERE flagged OR action = 'block';
ALTER TABLE events ADD COLUMN notable INTEGER NOT NULL DEFAULT 0;
UPDATE events SET notable = 1 WHERE answer IN (SELECT id FROM answers WHERE notable);
ALTER TABLE requests ADD COLUMN notable INTEGER NOT NULL DEFAULT 0;
UPDATE requests SET notable = 1 WHERE answer IN (SELECT id FROM answers WHERE notable);
CREATE INDEX events_notable ON events (ts, asker, answer, notable) WHERE notable;  -- see docs/store.md
CREATE INDEX requests_notable ON requests (ts, asker, answer, notable) WHERE notable;
CREATE INDEX events_notable_by_asker ON events (asker, ts, answer, notable) WHERE notable;
CREATE INDEX requests_notable_by_asker ON requests (asker, ts, answer, notable) WHERE notable;
CREATE INDEX events_notable_by_answer ON events (answer, ts, notable) WHERE notable;
CREATE INDEX requests_notable_by_answer ON requests (answer, ts, notable) WHERE notable;
CREATE INDEX askers_by_subject ON askers (subject);
CREATE INDEX askers_by_client ON askers (client);
CREATE INDEX answers_notable ON answers (category, severity, action, flagged, notable) WHERE notable;
ALTER TABLE key_ranges ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;  -- the writer process holding it

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO settings (key, value) VALUES ('bindings', '0');  -- bumped by every sign-in or device change

CREATE TABLE staff (
    id           INTEGER PRIMARY KEY,
    username     TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    display_name TEXT    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('staff', 'lead', 'admin')),
    password     TEXT    NOT NULL,  -- scrypt: $scrypt$n$r$p$salt$hash
    created      REAL    NOT NULL,
    disabled     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sign_in_failures (
    key TEXT NOT NULL,  -- user:<name> or addr:<address>
    ts  REAL NOT NULL
);
CREATE INDEX sign_in_failures_by_key ON sign_in_failures (key, ts);
CREATE TABLE setup_links (
    token_hash TEXT PRIMARY KEY,
    expires    REAL NOT NULL,
    used       REAL
) WITHOUT ROWID;

CREATE TABLE children (
    id           TEXT    PRIMARY KEY,  -- pseudonymous: events say child:<id>, never the name
    display_name TEXT    NOT NULL,
    profile      TEXT    NOT NULL,
    pin          TEXT    NOT NULL,     -- scrypt of the PIN
    created      REAL    NOT NULL,
    archived     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE devices (
    name     TEXT    PRIMARY KEY,
    mac      TEXT    UNIQUE,
    address  TEXT,
    profile  TEXT    NOT NULL,
    managed  INTEGER NOT NULL DEFAULT 0,
    updated  REAL    NOT NULL
) WITHOUT ROWID;
CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY,
    child      TEXT    NOT NULL REFERENCES children (id),
    device     TEXT    NOT NULL,  -- the MAC where known, else the address
    client     TEXT    NOT NULL,  -- the address signed in from
    started    REAL    NOT NULL,
    expires    REAL    NOT NULL,  -- closing time
    idle_s     REAL    NOT NULL,
    last_seen  REAL    NOT NULL,  -- moved on by the event writers while the device is in use
    ended      REAL,
    end_reason TEXT
);
CREATE INDEX sessions_open ON sessions (child) WHERE ended IS NULL;
CREATE TABLE acceptances (
    id      INTEGER PRIMARY KEY,
    child   TEXT NOT NULL REFERENCES children (id),
    ts      REAL NOT NULL,
    rules   TEXT NOT NULL,  -- the version (hash) of the acceptable-use rules accepted
    client  TEXT NOT NULL
);

CREATE TABLE incidents (
    id        INTEGER PRIMARY KEY,
    title     TEXT    NOT NULL,
    status    TEXT    NOT NULL CHECK (status IN ('new', 'reviewing', 'escalated', 'closed')),
    severity  TEXT    NOT NULL,
    area      TEXT    NOT NULL,  -- three Cs: content, contact, conduct ('' when unknown)
    category  TEXT    NOT NULL,
    profile   TEXT    NOT NULL,
    subject   TEXT    NOT NULL,  -- child:<id> or device:<name>
    opened    REAL    NOT NULL,
    opened_by INTEGER NOT NULL REFERENCES staff (id),
    assignee  INTEGER REFERENCES staff (id),
    escalated_to TEXT NOT NULL DEFAULT '',
    outcome   TEXT    NOT NULL DEFAULT '',
    updated   REAL    NOT NULL,
    closed    REAL
);
CREATE INDEX incidents_by_opened ON incidents (opened);
-- The events an incident was opened from, copied whole: retention may purge the log, never the record.
CREATE TABLE incident_events (
    incident INTEGER NOT NULL REFERENCES incidents (id),
    event    TEXT    NOT NULL,  -- dns:N or web:N
    ts       REAL    NOT NULL,
    record   TEXT    NOT NULL,  -- JSON of the event as staff saw it
    PRIMARY KEY (incident, event)
) WITHOUT ROWID;
CREATE TABLE incident_notes (
    id       INTEGER PRIMARY KEY,
    incident INTEGER NOT NULL REFERENCES incidents (id),
    ts       REAL    NOT NULL,
    author   INTEGER NOT NULL REFERENCES staff (id),
    kind     TEXT    NOT NULL,  -- note, status, assign, escalate, outcome
    text     TEXT    NOT NULL
);
CREATE INDEX incident_notes_by_incident ON incident_notes (incident, ts);

CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    ts       REAL    NOT NULL,
    staff    INTEGER,          -- NULL for the appliance itself (a command, retention)
    username TEXT    NOT NULL,
    action   TEXT    NOT NULL,  -- view-events, add-child, change-profile, ...
    subject  TEXT    NOT NULL,  -- whose data or what was changed
    detail   TEXT    NOT NULL
);
CREATE INDEX audit_by_time ON audit (ts);
"""

# Version 4: staff sign-ins kept server-side, so signing out, a new password or a new role ends them
# (a copied cookie is worth nothing afterwards).
_V4 = """
CREATE TABLE staff_sessions (
    token_hash TEXT    PRIMARY KEY,  -- SHA-256 of the token in the signed cookie
    staff      INTEGER NOT NULL REFERENCES staff (id),
    started    REAL    NOT NULL,
    ended      REAL
) WITHOUT ROWID;
CREATE INDEX staff_sessions_by_staff ON staff_sessions (staff) WHERE ended IS NULL;

-- Every event row paid for an index by time; only retention used it, and it finds the old rows by their
-- rowids (added in time order) instead. The feed's and the reports' indexes are the partial ones.
DROP INDEX IF EXISTS events_by_time;
DROP INDEX IF EXISTS requests_by_time;

-- Notable events past retention, counted per local day before they are deleted: the yearly report
-- still counts them (and the children involved, by pseudonymous id) when the events are gone.
CREATE TABLE notable_days (
    day      TEXT    NOT NULL,  -- the centre's local date, YYYY-MM-DD
    channel  TEXT    NOT NULL,
    profile  TEXT    NOT NULL,
    category TEXT    NOT NULL,
    severity TEXT    NOT NULL,
    flagged  INTEGER NOT NULL,
    blocked  INTEGER NOT NULL,
    subject  TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (day, channel, profile, category, severity, flagged, blocked, subject)
) WITHOUT ROWID;
"""

# Version 5: staff signed in at the portal on a device (router mode: the staff profile on a device of
# the children's network comes from a staff sign-in, never from its MAC) are sessions too, so the idle
# clock, sign-out and closing time work as for a child. Their `child` is `staff.<staff id>` (a child's id
# never has a dot), with `staff` and the `profile` given set; a child's session must still name a child.
_V5 = """
CREATE TABLE sessions_v5 (
    id         INTEGER PRIMARY KEY,
    child      TEXT    NOT NULL,  -- a child's id (children.id), or staff.<staff id>
    staff      INTEGER REFERENCES staff (id),  -- a member of staff signed in at the portal
    profile    TEXT,              -- their session's profile (portal.staff_profile); a child's is theirs
    device     TEXT    NOT NULL,  -- the MAC where known, else the address
    client     TEXT    NOT NULL,  -- the address signed in from
    started    REAL    NOT NULL,
    expires    REAL    NOT NULL,  -- closing time
    idle_s     REAL    NOT NULL,
    last_seen  REAL    NOT NULL,  -- moved on by the event writers while the device is in use
    ended      REAL,
    end_reason TEXT,
    CHECK ((staff IS NULL) = (profile IS NULL) AND (staff IS NULL) = (child NOT LIKE 'staff.%'))
);
INSERT INTO sessions_v5 (id, child, device, client, started, expires, idle_s, last_seen, ended, end_reason)
    SELECT id, child, device, client, started, expires, idle_s, last_seen, ended, end_reason FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v5 RENAME TO sessions;
CREATE INDEX sessions_open ON sessions (child) WHERE ended IS NULL;
CREATE TRIGGER sessions_name_a_child BEFORE INSERT ON sessions
    WHEN NEW.staff IS NULL AND NOT EXISTS (SELECT 1 FROM children WHERE id = NEW.child)
    BEGIN SELECT RAISE(ABORT, 'a session names a child that does not exist'); END;
"""

# Version 6: records staff can trust. An incident holds the events of one child (or device); a child's
# display name is unique among active children. Files made before found mixed incidents and duplicate
# names: this step changes none of them, it flags each for the e-safety lead (shown on the incident and
# on the children's page until the lead marks it resolved) and writes the finding to the audit log.
_V6 = """
CREATE TABLE record_flags (
    id       INTEGER PRIMARY KEY,
    kind     TEXT    NOT NULL CHECK (kind IN ('mixed-incident', 'duplicate-child')),
    target   TEXT    NOT NULL,  -- incident:<number> or child:<id>
    detail   TEXT    NOT NULL,  -- what was found, in a sentence (pseudonymous ids, never names)
    ts       REAL    NOT NULL,
    resolved REAL,              -- when the lead marked it resolved
    resolved_by INTEGER REFERENCES staff (id)
);
CREATE INDEX record_flags_by_target ON record_flags (target) WHERE resolved IS NULL;
INSERT INTO record_flags (kind, target, detail, ts)
    SELECT 'mixed-incident', 'incident:' || incident,
           'holds events of ' || count(DISTINCT subject) || ' people: ' || group_concat(DISTINCT subject),
           (julianday('now') - 2440587.5) * 86400.0
    FROM (SELECT incident, json_extract(record, '$.subject') AS subject FROM incident_events
          ORDER BY incident, subject)
    GROUP BY incident HAVING count(DISTINCT subject) > 1;
INSERT INTO record_flags (kind, target, detail, ts)
    SELECT 'duplicate-child', 'child:' || c.id,
           'has the same name as another active child: ' || group_concat('child:' || o.id, ', '),
           (julianday('now') - 2440587.5) * 86400.0
    FROM children c JOIN children o
      ON o.id != c.id AND NOT o.archived AND lower(trim(o.display_name)) = lower(trim(c.display_name))
    WHERE NOT c.archived
    GROUP BY c.id;
INSERT INTO audit (ts, staff, username, action, subject, detail)
    SELECT ts, NULL, 'appliance', 'flag-record', target, detail FROM record_flags ORDER BY id;
"""

# Version 7: one row per visit (docs/store.md#visits). A notable event row is the first attempt of a
# visit: the same device, child, host and verdict again within the window (the TLS retries, the page, its
# favicon, the DNS answer before them) only adds to its `attempts` and moves its `last_ts` on. Rows from
# before are visits of one attempt each. Writers find a visit another writer opened in `open_visits`.
_V7 = """
ALTER TABLE events ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN last_ts REAL;  -- the visit's last attempt; NULL when only one (then ts)
ALTER TABLE requests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE requests ADD COLUMN last_ts REAL;
-- The visits begun in the last hour, by what makes attempts one visit: every writer finds another's
-- (the DNS filter's answer, then the proxy's page) and its own after a restart with one look-up.
CREATE TABLE open_visits (
    key   TEXT    PRIMARY KEY,  -- address, subject, host, action, category, flagged (0/1), reasons
                                -- (the JSON); joined by U+001F
    tbl   INTEGER NOT NULL,     -- 0: events, 1: requests
    row   INTEGER NOT NULL,     -- the visit's rowid there
    first REAL    NOT NULL,
    last  REAL    NOT NULL
) WITHOUT ROWID;
CREATE INDEX open_visits_by_last ON open_visits (last);  -- the writers drop those an hour old
-- The last hour's notable rows, so that a visit goes on across the upgrade (the newest of each key).
INSERT OR REPLACE INTO open_visits (key, tbl, row, first, last)
    SELECT a.client || char(31) || a.subject || char(31) || w.host || char(31) || w.action || char(31)
           || w.category || char(31) || w.flagged || char(31) || w.reasons, t.tbl, t.rowid, t.ts, t.ts
    FROM (SELECT 0 AS tbl, rowid, ts, asker, answer FROM events
          WHERE notable AND ts >= (SELECT max(ts) FROM events) - 3600
          UNION ALL
          SELECT 1, rowid, ts, asker, answer FROM requests
          WHERE notable AND terms = '' AND ts >= (SELECT max(ts) FROM requests) - 3600
          ORDER BY 3) t
    JOIN askers a ON a.id = t.asker JOIN answers w ON w.id = t.answer;
"""

# Version 8: alerts (docs/alerts.md). The alerter (appliance/alerts) reads the notable rows after its
# cursor, raises an alert for what alerts.yaml's rules name, and queues its deliveries, all in one
# transaction with the cursor: a kill -9 or power cut raises and queues each alert exactly once. Repeats
# of one rule for one subject within the throttle window add to the open alert's `count`. Incidents and
# their notes may now be opened and written by the appliance itself (`opened_by` / `author` NULL).
_V8 = """
CREATE TABLE incidents_v8 (
    id        INTEGER PRIMARY KEY,
    title     TEXT    NOT NULL,
    status    TEXT    NOT NULL CHECK (status IN ('new', 'reviewing', 'escalated', 'closed')),
    severity  TEXT    NOT NULL,
    area      TEXT    NOT NULL,
    category  TEXT    NOT NULL,
    profile   TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    opened    REAL    NOT NULL,
    opened_by INTEGER REFERENCES staff (id),  -- NULL: opened by the appliance (a critical alert)
    assignee  INTEGER REFERENCES staff (id),
    escalated_to TEXT NOT NULL DEFAULT '',
    outcome   TEXT    NOT NULL DEFAULT '',
    updated   REAL    NOT NULL,
    closed    REAL
);
INSERT INTO incidents_v8 SELECT id, title, status, severity, area, category, profile, subject, opened,
    opened_by, assignee, escalated_to, outcome, updated, closed FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_v8 RENAME TO incidents;
CREATE INDEX incidents_by_opened ON incidents (opened);
CREATE TABLE incident_notes_v8 (
    id       INTEGER PRIMARY KEY,
    incident INTEGER NOT NULL REFERENCES incidents (id),
    ts       REAL    NOT NULL,
    author   INTEGER REFERENCES staff (id),  -- NULL: the appliance (an alert, a delivery, its failure)
    kind     TEXT    NOT NULL,  -- note, status, assign, escalate, outcome, events, alert
    text     TEXT    NOT NULL
);
INSERT INTO incident_notes_v8 SELECT id, incident, ts, author, kind, text FROM incident_notes;
DROP TABLE incident_notes;
ALTER TABLE incident_notes_v8 RENAME TO incident_notes;
CREATE INDEX incident_notes_by_incident ON incident_notes (incident, ts);

CREATE TABLE alerts (
    id        INTEGER PRIMARY KEY,
    rule      TEXT    NOT NULL,  -- the alerts.yaml rule's name
    severity  TEXT    NOT NULL CHECK (severity IN ('medium', 'high', 'critical')),
    kind      TEXT    NOT NULL,  -- category, watch-list, personal-info, child-report, bypass
    category  TEXT    NOT NULL,  -- the event's category, '' when none
    subject   TEXT    NOT NULL,  -- child:<id>, device:<name> or guest:<address>
    profile   TEXT    NOT NULL,
    throttle  TEXT    NOT NULL,  -- rule and subject: a repeat within the window adds to this alert
    raised    REAL    NOT NULL,  -- the first event's time
    last_ts   REAL    NOT NULL,  -- the latest repeat's
    count     INTEGER NOT NULL DEFAULT 1,  -- events it stands for (suppressed repeats included)
    incident  INTEGER REFERENCES incidents (id),
    acknowledged    REAL,         -- NULL while open; acknowledging stops the ladder
    acknowledged_by INTEGER REFERENCES staff (id),
    ack_via   TEXT    NOT NULL DEFAULT ''  -- dashboard, link:<contact>
);
CREATE INDEX alerts_open ON alerts (raised) WHERE acknowledged IS NULL;
CREATE INDEX alerts_by_throttle ON alerts (throttle, last_ts);
CREATE INDEX alerts_by_subject ON alerts (subject, raised);
-- The events an alert stands for, by the feed's ids (dns:N, web:N), as incident_events keeps them.
CREATE TABLE alert_events (
    alert INTEGER NOT NULL REFERENCES alerts (id),
    event TEXT    NOT NULL,
    ts    REAL    NOT NULL,
    PRIMARY KEY (alert, event)
) WITHOUT ROWID;
-- The outbox: one row per message to one contact on one channel. Queued in the transaction that raises
-- the alert (or, for a later step of the ladder, that finds it due); sent by the alerter's deliverer.
CREATE TABLE alert_deliveries (
    id       INTEGER PRIMARY KEY,
    alert    INTEGER REFERENCES alerts (id),  -- NULL for a digest, a test or a channel-failure report
    kind     TEXT    NOT NULL,  -- alert, escalation, digest, channel-failure, test
    step     INTEGER NOT NULL,  -- the ladder's step (0: the first); 0 for the other kinds
    contact  TEXT    NOT NULL,  -- the alerts.yaml contact's name
    channel  TEXT    NOT NULL,  -- the channel's name in alerts.yaml, never its URL (it may hold a secret)
    due      REAL    NOT NULL,  -- when to (re)try
    state    TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error    TEXT    NOT NULL DEFAULT '',  -- the last failure, in words
    sent     REAL,
    created  REAL    NOT NULL,
    body     TEXT    NOT NULL DEFAULT ''  -- JSON {title, body} for kinds without an alert (digest, ...)
);
CREATE UNIQUE INDEX alert_deliveries_once ON alert_deliveries (alert, kind, step, contact, channel)
    WHERE alert IS NOT NULL;
CREATE INDEX alert_deliveries_due ON alert_deliveries (due) WHERE state = 'pending';
CREATE INDEX alert_deliveries_by_alert ON alert_deliveries (alert);
-- Single-use acknowledge links sent in messages (the token itself is only in the message).
CREATE TABLE alert_links (
    token_hash TEXT    PRIMARY KEY,  -- SHA-256 of the token
    alert      INTEGER NOT NULL REFERENCES alerts (id),
    contact    TEXT    NOT NULL,
    expires    REAL    NOT NULL,
    used       REAL
) WITHOUT ROWID;
-- Trying to get round the filter, per child or device: every attempt counted (the conduct flag).
CREATE TABLE conduct_flags (
    subject TEXT    NOT NULL,
    kind    TEXT    NOT NULL,  -- bypass
    first   REAL    NOT NULL,
    last    REAL    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (subject, kind)
) WITHOUT ROWID;
-- Where the alerter has read to in each table (events, requests: their rowids), moved in the
-- transaction that raises: an older file's events are not alerted on.
CREATE TABLE alert_cursor (
    tbl  TEXT    PRIMARY KEY,
    last INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO alert_cursor VALUES ('events', (SELECT coalesce(max(rowid), 0) FROM events));
INSERT INTO alert_cursor VALUES ('requests', (SELECT coalesce(max(rowid), 0) FROM requests));
-- Router mode: tunnels past the filter (DoT, DoH) the router refused a device, new since the previous
-- reading of its counts (`appliance router refusals`, on a timer: appliance/refusals.py).
CREATE TABLE refusals (
    id     INTEGER PRIMARY KEY,
    ts     REAL    NOT NULL,
    client TEXT    NOT NULL,  -- the device's address
    count  INTEGER NOT NULL   -- packets refused since the previous reading
);
INSERT INTO alert_cursor VALUES ('refusals', 0);
"""

# Version 9: staff in control, in the moment (issue 21, docs/store.md#controls): pauses, grants ("allow for a
# while"), the children's asks to use a site, per-child time budgets, extra time and the active minutes
# budgets are counted from. `settings.controls` is bumped by every change the answering services follow.
_V9 = """
CREATE TABLE pauses (
    id       INTEGER PRIMARY KEY,
    scope    TEXT    NOT NULL CHECK (scope IN ('device', 'child', 'profile', 'centre')),
    target   TEXT    NOT NULL,  -- device key, child id, profile name, '' for the centre
    label    TEXT    NOT NULL,  -- what staff see: the device's or child's name, the profile
    since    REAL    NOT NULL,
    until    REAL,              -- NULL: until resumed
    by       TEXT    NOT NULL,  -- staff user name
    reason   TEXT    NOT NULL DEFAULT '',
    ended    REAL,              -- resumed early
    ended_by TEXT
);
CREATE TABLE grants (
    id       INTEGER PRIMARY KEY,
    child    TEXT,              -- a child's id, or
    device   TEXT,              -- a device key
    label    TEXT    NOT NULL,  -- the child's or device's name, for staff
    host     TEXT,              -- a site (with its subdomains), or
    category TEXT,
    since    REAL    NOT NULL,
    until    REAL    NOT NULL,
    by       TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    ended    REAL,
    ended_by TEXT,
    CHECK ((child IS NULL) <> (device IS NULL)),
    CHECK ((host IS NULL) <> (category IS NULL))
);
-- "Ask to use this site", from the block page: pending until staff grant or refuse it.
CREATE TABLE access_requests (
    id          INTEGER PRIMARY KEY,
    ts          REAL    NOT NULL,
    subject     TEXT    NOT NULL,  -- child:<id> or device:<name> or guest
    child       TEXT,              -- the child's id when signed in
    device      TEXT    NOT NULL,  -- the device key
    client      TEXT    NOT NULL,  -- the address
    label       TEXT    NOT NULL,  -- who, for staff (child's display name, device name, the address)
    host        TEXT    NOT NULL,
    category    TEXT    NOT NULL DEFAULT '',
    profile     TEXT    NOT NULL,
    note        TEXT    NOT NULL DEFAULT '',  -- the child's words (at most 200 characters)
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'granted', 'refused', 'expired')),
    answered    REAL,
    answered_by TEXT,
    grant_id    INTEGER REFERENCES grants (id)
);
CREATE INDEX access_requests_pending ON access_requests (ts) WHERE state = 'pending';
CREATE TABLE child_budgets (
    child      TEXT    PRIMARY KEY REFERENCES children (id),
    minutes    INTEGER,                       -- daily internet minutes; NULL: none
    categories TEXT    NOT NULL DEFAULT '{}',  -- JSON {category: minutes}
    set_by     TEXT    NOT NULL,
    ts         REAL    NOT NULL
) WITHOUT ROWID;
CREATE TABLE extra_time (
    id       INTEGER PRIMARY KEY,
    day      TEXT    NOT NULL,             -- the centre's date, YYYY-MM-DD
    child    TEXT    NOT NULL,             -- the child's id
    category TEXT    NOT NULL DEFAULT '',  -- '' for the internet
    minutes  INTEGER NOT NULL CHECK (minutes > 0),
    by       TEXT    NOT NULL,
    reason   TEXT    NOT NULL DEFAULT '',
    ts       REAL    NOT NULL
);
-- Active minutes (docs/profiles.md, "Time budgets"): one row per child, category ('' for the internet) and
-- minute of the clock (int(ts // 60)) in which a signed-in child's device asked anything; the DNS
-- filter's and the proxy's writers write the same minute once.
CREATE TABLE activity (
    day      TEXT    NOT NULL,
    child    TEXT    NOT NULL,  -- the child's id
    category TEXT    NOT NULL,  -- '' for the internet
    minute   INTEGER NOT NULL,  -- int(ts // 60)
    PRIMARY KEY (day, child, category, minute)
) WITHOUT ROWID;
INSERT INTO settings (key, value) VALUES ('controls', '0');  -- bumped by every change the services follow
"""

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
    (7, _V7),
    (8, _V8),
    (9, _V9),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


# The store holds children's names, their browsing and the staff's accounts: its owner only. On the Pi one
# user (`appliance`) runs every service and each of them writes the file (in WAL mode even a reader
# writes the -shm), so a group could be given nothing useful; root (backups) reads it anyway.
STORE_MODE = 0o600


def connect(path: Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection to the store at `path` (made and migrated if needed), in autocommit mode: callers
    open their own transactions. The file and its -wal and -shm are STORE_MODE. Raises StoreError
    naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _owner_only(path)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout)
        _wal(db, timeout)
        # FULL: each commit (a writer's batch, four a second) is on the disk before the next, so a power
        # cut loses at most the batch being written; NORMAL would leave it to the kernel's write-back
        # (up to 30 s). The cost is one fsync per batch.
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        _migrate(db, path)
    except (sqlite3.Error, OSError) as e:
        raise StoreError(f"{path}: cannot open the event store: {e}") from e
    return db


def _owner_only(path: Path) -> None:
    """Make the store file STORE_MODE before SQLite makes it with the umask's mode (SQLite gives the -wal
    and -shm it makes the store file's mode); narrow a file an older appliance left readable by all."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STORE_MODE))
    for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):  # not ours to change: left as it is
            if os.stat(file).st_mode & 0o077:
                os.chmod(file, STORE_MODE)


def _wal(db: sqlite3.Connection, timeout: float) -> None:
    """Switch to WAL. On a fresh file another process may hold the write lock to migrate it, before its
    first commit makes the file WAL: SQLite then answers "locked" at once, without waiting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: the event store has schema version {version};"
            f" this appliance knows up to {SCHEMA_VERSION}: install the newer appliance again"
        )
    for target, script in MIGRATIONS:
        if version >= target:
            continue
        # A step may remake a table others name (SQLite's twelve steps for a changed column): the
        # references are off while it runs, and checked whole before it commits.
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute("BEGIN IMMEDIATE")
        try:
            (now,) = db.execute("PRAGMA user_version").fetchone()
            if now < target:  # another process may have migrated while this one waited
                # The log view is remade by the step that changes its tables.
                db.execute("DROP VIEW IF EXISTS event_log")
                for statement in _statements(script):
                    db.execute(statement)
                broken = db.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(f"{path}: migrating to version {target} broke references: {broken[:3]}")
                db.execute(f"PRAGMA user_version = {target}")
            db.execute("COMMIT")
        except BaseException:
            rollback(db)
            raise
        finally:
            db.execute("PRAGMA foreign_keys = ON")
        version = target
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'event_log'").fetchone() is None:
        db.execute(_EVENT_LOG_VIEW)


def _statements(script: str) -> list[str]:
    """`script` split into statements (executescript would commit the open transaction)."""
    out, part = [], ""
    for line in script.splitlines(keepends=True):
        part += line
        if sqlite3.complete_statement(part):
            out.append(part.strip())
            part = ""
    return [s for s in out if s]


# Every event, DNS and web, as one table (for people and tools; the dashboard queries the tables).
_EVENT_LOG_VIEW = """
CREATE VIEW IF NOT EXISTS event_log AS
    SELECT 'dns:' || e.rowid AS id, e.ts, w.channel, a.client, a.subject, a.via, w.profile, w.host,
           w.detail, w.action, w.severity, w.category, w.flagged, w.reasons, e.duration_us, e.notable,
           NULL AS method, NULL AS url, NULL AS status, NULL AS bytes, NULL AS terms,
           e.attempts, coalesce(e.last_ts, e.ts) AS last_ts
    FROM events e JOIN askers a ON a.id = e.asker JOIN answers w ON w.id = e.answer
    UNION ALL
    SELECT 'web:' || r.rowid, r.ts, w.channel, a.client, a.subject, a.via, w.profile, w.host,
           w.detail, w.action, w.severity, w.category, w.flagged, w.reasons, r.duration_us, r.notable,
           r.method, r.url, r.status, r.bytes, r.terms, r.attempts, coalesce(r.last_ts, r.ts)
    FROM requests r JOIN askers a ON a.id = r.asker JOIN answers w ON w.id = r.answer;
"""


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE: the write lock at once, so no upgrade deadlock between
    processes); rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise


def rollback(db: sqlite3.Connection) -> None:
    """End the failed transaction on `db`, if SQLite has not already: on a full disk (SQLITE_FULL) or an
    I/O error it may roll back by itself, and a ROLLBACK then would raise ("cannot rollback - no
    transaction is active") instead of the real error."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def disk_full(error: BaseException, where: Path | None = None) -> bool:
    """Whether `error` (or what caused it) is a full disk: SQLite's SQLITE_FULL, ENOSPC or EDQUOT; or,
    with `where` (the store's folder), an SQLite I/O error while that disk has no room left (SQLite
    says "disk I/O error" when it cannot make its -wal or -shm file)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlite3.Error):
            code = getattr(seen, "sqlite_errorcode", 0) & 0xFF
            if code == sqlite3.SQLITE_FULL:
                return True
            if code == sqlite3.SQLITE_IOERR and where is not None and _room(where) < NO_ROOM_BYTES:
                return True
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__
    return False


NO_ROOM_BYTES = 64 * 1024  # less than this free: SQLite cannot grow its files


def _room(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62
