"""The event log: its values (`values`: askers and answers, named as the tables are), the answering
side's end (`recording.EventLog`, what the DNS filter and the proxy record through) and the writer
process (`writer`, `python -m appliance.events.writer`) that puts them in the SQLite file
(appliance/store). Imports no service: the DNS filter, the proxy and the dashboard import it.
"""
