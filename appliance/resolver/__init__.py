"""Name resolution shared by the DNS filter and the proxy: the upstream servers and how they are chosen,
the answer cache, and the filtered resolution of a name for one device (CNAME cloaking included).
Neither service imports the other; both import this."""
