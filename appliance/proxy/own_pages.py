"""The addon for the appliance's own pages: requests to them carry the asking device, signed by the proxy
(X-Appliance-Client); the CA's certificate pages on the portal's hosts (for staff, `/ca`; for children's
and guests' own devices, `/ca/own`); the block page's report form and its "ask to use this site",
posted back on any host, each accepted once from the device that was shown the block on the blocked host.

An ask is written to the event store (`appliance.store.controls.ask`) from a thread of its own, the flow
held meanwhile (mitmproxy's intercept and resume) and answered "not sent" if the store has not taken it
within ASK_TIMEOUT_S: the event loop never waits on the disk."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mitmproxy import http

from appliance.forwarding import CLIENT_HEADER, stamp
from appliance.pages import (
    ASK_NOTE_MAX,
    ASK_PATH,
    asked_page,
    certificate_page,
    own_certificate_page,
    reported_page,
)
from appliance.proxy.answers import answer, failed
from appliance.proxy.report import REPORT_PATH, Blocked, SpentTokens, read_token
from appliance.proxy.shared import KEY, Seen, Shared, log, seen_of
from appliance.store import controls
from appliance.store.schema import connect
from profiles.controls import GRANT_LIFTS, device_key, label_of
from profiles.decide import child_report
from profiles.verdict import Step

REPORT_MAX_BYTES = 16 * 1024  # a report form: a token and a note of at most 500 characters
_CA_PATHS = frozenset({"/ca", "/ca/", "/ca/own", "/ca.pem", "/ca.crt", "/ca.der", "/ca.cer"})
_NOT_SENT = (
    "<!doctype html><title>Not sent</title>"
    "<p>This report could not be sent. Please ask a member of staff.</p>"
)
_ASK_NOT_SENT = (
    "<!doctype html><title>Not sent</title>"
    "<p>Staff could not be asked from here. Please ask a member of staff.</p>"
)
ASK_FLAG = "childsafe_ask"  # flow.metadata: the block page's ask form, read in `request`
ASK_TIMEOUT_S = 2.0  # the store takes an ask within this, or the child is told it was not sent
# The blocks a grant lifts (profiles.controls.GRANT_LIFTS), as the token's summary names their steps.
_GRANTABLE = frozenset(step.value for step in GRANT_LIFTS)


@dataclass(frozen=True)
class Ask:
    """One child's (or device's) ask to use a blocked site, as the store takes it."""

    subject: str
    child: str | None
    device: str
    client: str
    label: str
    host: str
    category: str
    profile: str
    note: str


class OwnPages:
    """Answers the requests that are the appliance's, before any is decided as a site."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.spent = SpentTokens(shared.live.config.data_dir / "reports-spent")
        self.asks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asks")
        self.answering: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak ones)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        seen = seen_of(flow, "requestheaders")
        if seen is None or not seen.host:
            return
        shared = self.shared
        try:
            request = flow.request
            if shared.to_appliance(seen.host):
                request.headers[CLIENT_HEADER] = stamp(shared.forwarding, seen.who.client, time.time())
            path = request.path.split("?", 1)[0]
            if path == REPORT_PATH and request.method == "POST":
                seen.report = True
                # Ours whatever happens next: "not sent" stands unless `_report` accepts the report, and
                # the form never goes on to the site (a large or unmeasured body is not even read).
                answer(flow, seen, 400, _NOT_SENT)
                size = request.headers.get("content-length", "")
                if request.stream or not size.isdigit() or int(size) > REPORT_MAX_BYTES:
                    log.warning(
                        "refused a report form of %s bytes from %s", size or "unknown", seen.who.client
                    )
                    flow.kill()
            elif path == ASK_PATH and request.method == "POST":
                flow.metadata[ASK_FLAG] = True
                answer(flow, seen, 400, _ASK_NOT_SENT)  # as for a report: ours whatever happens next
                size = request.headers.get("content-length", "")
                if request.stream or not size.isdigit() or int(size) > REPORT_MAX_BYTES:
                    log.warning("refused an ask form of %s bytes from %s", size or "unknown", seen.who.client)
                    flow.kill()
            elif path in _CA_PATHS and seen.host in shared.live.config.policy.portal_hosts:
                self._certificate(flow, seen, path)
        except Exception:
            failed(shared, flow, seen, "requestheaders")

    def request(self, flow: http.HTTPFlow) -> None:
        seen = flow.metadata.get(KEY)
        if seen is not None and seen.report:
            self._report(flow, seen)
        elif seen is not None and flow.metadata.get(ASK_FLAG):
            self._ask(flow, seen)

    def _ask(self, flow: http.HTTPFlow, seen: Seen) -> None:
        """An ask form posted back: checked as a report is (its own spending of the token), then held
        while a thread writes it to the store; "not sent" stands unless the store took it in time."""
        shared = self.shared
        try:
            form = flow.request.urlencoded_form
            now = time.time()
            blocked = self._spent_token(form.get("token", ""), seen, now, spend_as="ask-")
            if blocked is None or not grantable(blocked):
                log.warning(
                    "refused an ask from %s: forged, used, expired, for another host or not grantable",
                    seen.who.client,
                )
                return
            ask = self._ask_of(seen, blocked, form.get("note", ""))
            loop = asyncio.get_running_loop()
            written = loop.run_in_executor(self.asks, _write_ask, shared.live.config.events_path, ask, now)
            flow.intercept()
            task = loop.create_task(self._answer_ask(flow, seen, written))
            self.answering.add(task)
            task.add_done_callback(self.answering.discard)
        except Exception:
            shared.errors += 1
            log.exception("reading an ask failed: answered as not sent")

    def _ask_of(self, seen: Seen, blocked: Blocked, note: str) -> Ask:
        identity = seen.identity
        client = seen.who.client
        child = identity.child.id if identity.child is not None and not identity.child.staff else None
        return Ask(
            subject=identity.subject,
            child=child,
            device=device_key(client, self.shared.neighbours.mac_of(client)),
            client=client,
            label=label_of(identity, client),
            host=blocked.host,
            category=category_of(blocked),
            profile=identity.profile,
            note=" ".join(note.split())[:ASK_NOTE_MAX],
        )

    async def _answer_ask(self, flow: http.HTTPFlow, seen: Seen, written: asyncio.Future[int]) -> None:
        """The thanks page once the store has the ask; "not sent" (already the answer) on failure or
        after ASK_TIMEOUT_S. The flow goes on either way."""
        try:
            await asyncio.wait_for(asyncio.shield(written), ASK_TIMEOUT_S)
            settings = self.shared.live.config.proxy
            answer(flow, seen, 200, asked_page(helpline=settings.helpline, centre=settings.centre))
        except TimeoutError:
            self.shared.errors += 1
            log.error("the store did not take an ask from %s in %s s", seen.who.client, ASK_TIMEOUT_S)
        except Exception:
            self.shared.errors += 1
            log.exception("writing an ask from %s failed: answered as not sent", seen.who.client)
        finally:
            flow.resume()

    def _spent_token(self, token: str, seen: Seen, now: float, *, spend_as: str) -> Blocked | None:
        """The block a posted form's token names, if the proxy signed it, it is for this host and the
        device that was shown the block, and it is spent now (once per `spend_as`: a block may be both
        reported and asked about); else None."""
        blocked = read_token(self.shared.authority.report_key, token, now)
        if (
            blocked is None
            or blocked.host != seen.host
            or blocked.device != seen.who.client
            or not self.spent.spend(spend_as + blocked.nonce, now)
        ):
            return None
        return blocked

    def _report(self, flow: http.HTTPFlow, seen: Seen) -> None:
        """A report form posted back: accepted once, from the device that was shown the block, on the
        blocked host; anything else keeps the "not sent" answer `requestheaders` gave."""
        shared = self.shared
        try:
            form = flow.request.urlencoded_form
            blocked = self._spent_token(form.get("token", ""), seen, time.time(), spend_as="")
            if blocked is None:
                log.warning(
                    "refused a report from %s: forged, used, expired or for another host", seen.who.client
                )
                return
            rules = shared.live.policy.rules_for(seen.identity.profile)
            seen.verdict = child_report(rules.name, blocked.why, form.get("note", ""))
            settings = shared.live.config.proxy
            answer(flow, seen, 200, reported_page(helpline=settings.helpline, centre=settings.centre))
            flow.metadata["childsafe_host"] = blocked.host
        except Exception:
            shared.errors += 1
            log.exception("reading a report failed: answered as not sent")

    def _certificate(self, flow: http.HTTPFlow, seen: Seen, path: str) -> None:
        ca = self.shared.authority
        if path.endswith((".der", ".cer", ".pem", ".crt")):
            # The device may be about to trust it: asked again on its next blocked site (proxy/trust.py).
            self.shared.trust.forget(seen.who.client)
        if path.endswith((".der", ".cer")):
            answer(flow, seen, 200, ca.cert_der, "application/x-x509-ca-cert")
        elif path.endswith((".pem", ".crt")):
            answer(flow, seen, 200, ca.cert_pem, "application/x-pem-file")
        else:
            render = own_certificate_page if path == "/ca/own" else certificate_page
            page = render(
                centre=self.shared.live.config.proxy.centre,
                fingerprint_sha256=ca.fingerprint,
                pem_url="/ca.pem",
                der_url="/ca.der",
            )
            answer(flow, seen, 200, page)


def grantable(blocked: Blocked) -> bool:
    """Whether the block a token names is one staff may lift for a while: every reason's step is, and
    no budget reason is the whole internet's (its summary says "internet", a category's names it)."""
    parts = [part.partition(":") for part in blocked.why.split(";") if part.strip()]
    return bool(parts) and all(
        step.strip() in _GRANTABLE and not (step.strip() == Step.BUDGET.value and "internet" in what)
        for step, _, what in parts
    )


def category_of(blocked: Blocked) -> str:
    """The blocked category the block named first ("" for allowlist-only or a budget)."""
    for part in blocked.why.split(";"):
        step, _, what = part.partition(":")
        if step.strip() == Step.CATEGORY.value and what.strip():
            return what.strip()
    return ""


def _write_ask(path: Path, ask: Ask, now: float) -> int:
    """In the asks' thread: the ask into the store (a short busy wait: the child is waiting)."""
    db = connect(path, timeout=ASK_TIMEOUT_S)
    try:
        return controls.ask(
            db,
            subject=ask.subject,
            child=ask.child,
            device=ask.device,
            client=ask.client,
            label=ask.label,
            host=ask.host,
            category=ask.category,
            profile=ask.profile,
            note=ask.note,
            now=now,
        )
    finally:
        db.close()
