"""Through the real proxy: a teenager's self-harm search, a phone number posted to a stranger's site and a
press of "report a problem" on a block page are stored by the proxy's writer as it always has; the
raiser, reading that store, raises the critical self-harm and report alerts (each opening an incident
with its event) and the high personal-information one."""

from __future__ import annotations

import re
import time

from appliance.alerts.raising import Raiser
from appliance.config import PolicySettings
from appliance.policy_files import read_policy_files
from appliance.proxy.report import REPORT_PATH
from appliance.store.incidents import events_of
from appliance.store.schema import connect
from tests.appliance.proxy.conftest import TEENS, Origin, Proxy, fetch, internet, origin, proxy, sites

__all__ = ["internet", "origin", "proxy", "sites"]  # the real proxy's fixtures, used here

FILES = read_policy_files(PolicySettings())
AREA_OF = {c.name: str(c.area or "") for c in FILES.categories.values()}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_a_search_a_phone_number_and_a_report_through_the_real_proxy_raise_their_alerts(
    proxy: Proxy, origin: Origin
) -> None:
    port = origin.http_port
    fetch(proxy, TEENS, f"http://www.google.com:{port}/search?q=i+want+to+die+tonight")
    fetch(
        proxy,
        TEENS,
        f"http://pen-pals.example:{port}/msg",
        method="POST",
        headers=FORM,
        body=b"message=text+me+on+07700+900456",
    )
    _, _, page = fetch(proxy, TEENS, f"http://www.pornhub.com:{port}/")
    token = re.search(rb'name="token" value="([^"]+)"', page).group(1).decode()  # type: ignore[union-attr]
    status, _, _ = fetch(
        proxy,
        TEENS,
        f"http://www.pornhub.com{REPORT_PATH}",
        method="POST",
        headers=FORM,
        body=f"token={token}&note=someone+keeps+messaging+me".encode(),
    )
    assert status == 200

    db = connect(proxy.events)
    try:
        raiser = Raiser(db, area_of=AREA_OF)
        raised: dict[str, tuple[str, int | None]] = {}
        deadline = time.monotonic() + 10  # the proxy's writer writes four times a second
        while len(raised) < 3 and time.monotonic() < deadline:
            for alert in raiser.step(FILES.alerts, time.time()):
                rule, severity, incident = db.execute(
                    "SELECT rule, severity, incident FROM alerts"
                    " WHERE id = ? AND subject = 'device:teen-laptop'",
                    (alert,),
                ).fetchone() or (None, None, None)
                if rule in ("self-harm", "child-report", "personal-info"):
                    raised[rule] = (severity, incident)
            time.sleep(0.1)
        assert {r: s for r, (s, _) in raised.items()} == {
            "self-harm": "critical",
            "child-report": "critical",
            "personal-info": "high",
        }
        assert raised["personal-info"][1] is None
        searched = events_of(db, raised["self-harm"][1])  # type: ignore[arg-type]
        assert searched[0]["host"] == "www.google.com" and "want to die" in str(searched[0]["terms"])
        reported = events_of(db, raised["child-report"][1])  # type: ignore[arg-type]
        assert "someone keeps messaging me" in str(reported[0]["reasons"])
    finally:
        db.close()
