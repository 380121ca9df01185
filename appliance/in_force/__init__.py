"""The policy in force, shared by the DNS filter and the proxy (and read by the dashboard): loading it
(`live`: configuration, head office's set, policy files, compiled lists), who a client is (`Live.identify`),
the store's sign-ins and named devices (`bindings`), and the one follower (`follower`) that watches the
files, reloads, hands the events over and reports."""
