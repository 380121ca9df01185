"""An alerter process for the tests (`python -m tests.appliance.alerts.alerter_child STORE SMTP_PORT`): the
real loop (`service.serve`) and deliverer on the store at STORE, telling `duty` by e-mail through the
test's SMTP server. SIGTERM stops it; the tests also kill it with SIGKILL."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC
from pathlib import Path

from appliance.alerts.delivery import Deliverer
from appliance.alerts.service import Alerter, serve
from appliance.store.schema import connect
from profiles.alerts import AlertPolicy, Channel, Contact, LadderStep


def main() -> int:
    store, port = Path(sys.argv[1]), int(sys.argv[2])
    url = f"mailto://127.0.0.1:{port}?from=appliance@centre.example&to=duty@centre.example&mode=insecure"
    policy = AlertPolicy(
        centre="Demo centre",
        link_base="https://appliance.lan",
        contacts=(Contact("duty", (Channel("email", url),)),),
        ladder=(LadderStep(0, "duty"),),
    )
    db = connect(store)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    serve(Alerter(Deliverer(db), None, UTC), lambda: policy, stop)
    db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
