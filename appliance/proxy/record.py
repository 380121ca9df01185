"""The addon that records each web request in the event log once it is answered (or failed): what was
decided, the status and size, and the search terms of a watch-list flag. Connections are recorded where
they are decided (`Shared.log`). At the end the worker's events are handed over and its log closed."""

from __future__ import annotations

from mitmproxy import http

from appliance.proxy.shared import KEY, Seen, Shared, log, url_now
from profiles.search_terms import extract_search
from profiles.verdict import Step


class Record:
    """Last of the addons: logs each request with the verdict the others left on its `Seen`."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def response(self, flow: http.HTTPFlow) -> None:
        seen = flow.metadata.get(KEY)
        if seen is not None:
            self._log_flow(flow, seen)

    def error(self, flow: http.HTTPFlow) -> None:
        seen = flow.metadata.get(KEY)
        if seen is not None:
            self._log_flow(flow, seen)

    def done(self) -> None:
        events = self.shared.events
        if events is not None:
            events.hand_over()
            events.close()

    def _log_flow(self, flow: http.HTTPFlow, seen: Seen) -> None:
        verdict = seen.verdict
        if verdict is None or self.shared.events is None:
            return
        try:
            response = flow.response
            status = response.status_code if response is not None and flow.error is None else 0
            if response is None:
                size = 0
            elif response.raw_content is not None:
                size = len(response.raw_content)
            else:
                size = seen.sent
            host = flow.metadata.get("childsafe_host") or seen.host
            url = flow.metadata.get("childsafe_url") or url_now(flow, seen)
            terms = ""
            if verdict.flagged and any(r.step is Step.WATCH_LIST for r in verdict.reasons):
                search = extract_search(url)
                terms = search.terms if search is not None else ""
            kind = "report" if verdict.reasons and verdict.reasons[0].step is Step.CHILD_REPORT else "web"
            self.shared.log(
                seen.who, verdict, host, kind, seen.started, flow.request.method, url, status, size, terms
            )
            self.shared.count(seen.identity, seen.standing, verdict)
        except Exception:
            log.exception("logging a request failed")
