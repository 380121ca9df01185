"""The event store: one SQLite file for events, people, sessions, staff, incidents and the audit log."""
