"""The appliance's I/O: configuration, list reading and compiling, the DNS filter, the web proxy, the
event store and the `appliance` CLI."""
