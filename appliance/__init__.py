"""The appliance's I/O: configuration, list reading and compiling, the CLI (DNS, proxy and store to come)."""
