"""The addon that judges downloads by their name: a response that is a file to save (Content-Disposition
with a file name) is decided as a navigation to that name, and a profile's blocked download types get
the block page in its place."""

from __future__ import annotations

import re

from mitmproxy import http

from appliance.proxy.answers import block, failed
from appliance.proxy.shared import Seen, Shared, seen_of, url_of
from profiles.decide import decide
from profiles.request import Request
from profiles.verdict import Action, Step

_FILENAME = re.compile(r"""filename\*?\s*=\s*(?:UTF-8'[^']*')?"?([^";]+)""", re.IGNORECASE)


class Downloads:
    """Decides each named file a child would save, once the response's headers are in."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        seen = seen_of(flow, "responseheaders")
        response = flow.response
        if seen is None or response is None:
            return
        disposition = response.headers.get("content-disposition")
        if not disposition:
            return
        shared = self.shared
        try:
            if shared.live.policy.rules_for(seen.identity.profile).downloads:
                self._download(flow, seen, disposition)
        except Exception:
            failed(shared, flow, seen, "responseheaders", streaming=True)

    def _download(self, flow: http.HTTPFlow, seen: Seen, disposition: str) -> None:
        """A file the child would save: judged by its name as a navigation to it."""
        found = _FILENAME.search(disposition)
        if found is None:
            return
        name = found.group(1).strip().rsplit("/", 1)[-1]
        url = url_of(flow.request.scheme, seen.host, flow.request.port, f"/{name}")
        shared = self.shared
        verdict = decide(Request.web(url), shared.live.policy, seen.identity, shared.now(), seen.standing)
        if verdict.action is not Action.BLOCK or not any(r.step is Step.DOWNLOAD for r in verdict.reasons):
            return
        seen.verdict = verdict
        block(self.shared, flow, seen, verdict, streaming=True)
