"""The health checks around a swap: before it, the new set's lists and policy decide the bundle's
known-blocked and known-allowed names rightly for the guest profile; after it, the running DNS filter
has taken the new set and answers those names the same way. A problem is a sentence for staff."""

from __future__ import annotations

import time

from dnslib import QTYPE, RCODE, DNSRecord

from appliance.bundles.sets import loaded_by
from appliance.config import Config
from appliance.explain import explain
from appliance.net import split_host_port
from appliance.policy_files import read_policy_files
from appliance.storage import open_index
from filters.errors import ApplianceError
from profiles.verdict import Action


def decision_problems(config: Config, blocked: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    """What is wrong with the lists and policy of `config` (a set not yet in force)."""
    try:
        files = read_policy_files(config.policy)
        policy = files.bind(open_index(config.index_path))
    except ApplianceError as e:
        return [f"the policy does not load with the new lists: {e}"]
    guest = files.settings.guest_profile
    problems = []
    for name in blocked:
        if explain(files, policy, guest, name).verdict.action is not Action.BLOCK:
            problems.append(f"{name} should be blocked for {guest} but is not")
    for name in allowed:
        if explain(files, policy, guest, name).verdict.action is Action.BLOCK:
            problems.append(f"{name} should be allowed for {guest} but is blocked")
    return problems


def dns_problems(
    config: Config, blocked: tuple[str, ...], allowed: tuple[str, ...], timeout_s: float
) -> list[str]:
    """What is wrong with the running DNS filter once `config`'s set is in force: it has not taken the
    set within `timeout_s`, does not answer, or answers a known name the wrong way."""
    want = config.set_dir.name if config.set_dir else "-"
    deadline = time.monotonic() + timeout_s
    while (found := loaded_by(config.data_dir, "dns")) != want:
        if time.monotonic() > deadline:
            has = found or "none"
            return [f"the DNS filter did not take set {want} within {timeout_s:g} s (it has {has})"]
        time.sleep(0.1)
    host, port = split_host_port(config.dns.listen[0], 53)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    stops = {"0.0.0.0", "::", *config.dns.block.page_v4, *config.dns.block.page_v6}
    problems = []
    for name, should_block in [(n, True) for n in blocked] + [(n, False) for n in allowed]:
        try:
            reply = DNSRecord.parse(DNSRecord.question(name, "A").send(host, port, timeout=3))
        except OSError as e:  # a time-out too
            return [f"the DNS filter on {host}:{port} does not answer ({e})"]
        rcode = reply.header.rcode
        addresses = {str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A}
        is_blocked = rcode == RCODE.NXDOMAIN or bool(addresses and addresses <= stops)
        if should_block and not is_blocked:
            answer = f"{RCODE.get(rcode)} {', '.join(sorted(addresses))}"
            problems.append(f"the DNS filter answers {name} with {answer}: not blocked")
        if not should_block and is_blocked:
            problems.append(f"the DNS filter blocks {name}, which should be allowed")
    return problems
