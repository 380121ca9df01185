"""Alerts: raised from the notable events (raising); people told (messages, delivery, service)."""
