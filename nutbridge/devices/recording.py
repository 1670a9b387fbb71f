"""An HTTP source recorded for ``nutbridge capture``: its client keeps a copy of every answer, so a family's
capture (the Enphase gateway's, the Powerwall's) is exactly its own source's requests, made by its own code."""

from __future__ import annotations

import httpx

from nutbridge.devices.capture import Answer
from nutbridge.devices.http import HttpSource


class Recording(HttpSource):
    """An HTTP source whose client keeps a copy of every answer: the answers are exactly the source's own
    requests, made by its own code (token, renewal, timeouts), so the capture cannot drift from what it reads.
    Mixed in before the family's source class; the capture sets ``answers`` to its Taken's before the first."""

    answers: dict[str, Answer]

    def make_client(self) -> httpx.AsyncClient:
        client = super().make_client()
        client.event_hooks["response"].append(self._keep)
        return client

    async def _keep(self, response: httpx.Response) -> None:
        await response.aread()  # inside the source's timeout: the hook runs within its GET
        path = response.request.url.raw_path.decode("ascii", "replace")
        self.answers[path] = Answer(response.status_code, response.headers.get("content-type", ""), response.content)
