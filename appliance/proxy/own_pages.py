"""The addon for the appliance's own pages: requests to them carry the asking device, signed by the proxy
(X-Appliance-Client); the CA's certificate pages on the portal's hosts (for staff, `/ca`; for children's
and guests' own devices, `/ca/own`); the block page's report form,
posted back on any host, accepted once from the device that was shown the block on the blocked host."""

from __future__ import annotations

import time

from mitmproxy import http

from appliance.forwarding import CLIENT_HEADER, stamp
from appliance.pages import certificate_page, own_certificate_page, reported_page
from appliance.proxy.answers import answer, failed
from appliance.proxy.report import REPORT_PATH, SpentTokens, read_token
from appliance.proxy.shared import KEY, Seen, Shared, log, seen_of
from profiles.decide import child_report

REPORT_MAX_BYTES = 16 * 1024  # a report form: a token and a note of at most 500 characters
_CA_PATHS = frozenset({"/ca", "/ca/", "/ca/own", "/ca.pem", "/ca.crt", "/ca.der", "/ca.cer"})
_NOT_SENT = (
    "<!doctype html><title>Not sent</title>"
    "<p>This report could not be sent. Please ask a member of staff.</p>"
)


class OwnPages:
    """Answers the requests that are the appliance's, before any is decided as a site."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.spent = SpentTokens(shared.live.config.data_dir / "reports-spent")

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
            elif path in _CA_PATHS and seen.host in shared.live.config.policy.portal_hosts:
                self._certificate(flow, seen, path)
        except Exception:
            failed(shared, flow, seen, "requestheaders")

    def request(self, flow: http.HTTPFlow) -> None:
        seen = flow.metadata.get(KEY)
        if seen is not None and seen.report:
            self._report(flow, seen)

    def _report(self, flow: http.HTTPFlow, seen: Seen) -> None:
        """A report form posted back: accepted once, from the device that was shown the block, on the
        blocked host; anything else keeps the "not sent" answer `requestheaders` gave."""
        shared = self.shared
        try:
            form = flow.request.urlencoded_form
            now = time.time()
            blocked = read_token(shared.authority.report_key, form.get("token", ""), now)
            if (
                blocked is None
                or blocked.host != seen.host
                or blocked.device != seen.who.client
                or not self.spent.spend(blocked.nonce, now)
            ):
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
