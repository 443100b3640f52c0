"""The one fake the unit tests use: answers from the gateway's HTTP chokepoint."""

import io
import json as jsonlib

import requests


def answer(status=200, json=None, text=None, headers=None):
    response = requests.Response()
    response.status_code = status
    response._content = (jsonlib.dumps(json) if json is not None else text or "").encode()
    response.raw = io.BytesIO(response._content)
    response.headers.update(headers or {})
    return response


class FakeGateway:
    """Stands in for requests.request in jobs.upstream: answers or raises in order."""

    def __init__(self, monkeypatch):
        self.calls = []
        self.replies = []
        monkeypatch.setattr("jobs.upstream.requests.request", self)

    def reply(self, *replies):
        self.replies.extend(replies)
        return self

    def __call__(self, method, url, **kwargs):
        self.calls.append({"method": method, "url": url, **kwargs})
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply
