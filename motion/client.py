"""A small signed CloudStack API client, for the demo and the command line.

It signs like the ``cs`` client (signature version 3 with ``expires``) and raises ApiError with
CloudStack's error code and text - also, with code 0, when the API cannot be reached or does not
answer JSON. ``list_all`` pages through a list command as ``cs ... fetch_list`` does.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import requests

from api.signing import sign_pairs


class ApiError(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class Client:
    def __init__(self, endpoint: str, key: str, secret: str, timeout: float = 30.0):
        self.endpoint = endpoint
        self.key = key
        self.secret = secret
        self.timeout = timeout
        self.http = requests.Session()

    def call(self, command: str, **params) -> dict:
        expires = (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S%z")
        pairs = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items()
                 if v is not None]
        pairs += [("command", command), ("response", "json"), ("apiKey", self.key),
                  ("signatureVersion", "3"), ("expires", expires)]
        pairs.append(("signature", sign_pairs(pairs, self.secret)))
        try:
            response = self.http.get(self.endpoint, params=pairs, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ApiError(0, f"cannot reach the API at {self.endpoint}: {exc}") from None
        try:
            [value] = response.json().values()
        except (ValueError, AttributeError):
            raise ApiError(0, f"the API at {self.endpoint} answered HTTP {response.status_code} "
                              f"without a CloudStack JSON body") from None
        if response.status_code != 200:
            raise ApiError(value.get("errorcode", response.status_code), value.get("errortext", ""))
        return value

    def list_all(self, command: str, key: str, pagesize: int = 500, **params) -> list[dict]:
        """Every object of a list command, page by page (``page`` + ``pagesize``)."""
        out: list[dict] = []
        page = 1
        while True:
            body = self.call(command, page=page, pagesize=pagesize, **params)
            items = body.get(key, [])
            out += items
            if not items or len(out) >= body.get("count", 0):
                return out
            page += 1

    def wait_job(self, jobid: str, on_progress=None, timeout: float = 600.0, interval: float = 0.2) -> dict:
        """Poll queryAsyncJobResult until the job ends; return the final answer."""
        end = time.monotonic() + timeout
        while True:
            job = self.call("queryAsyncJobResult", jobid=jobid)
            if job["jobstatus"] != 0:
                return job
            if on_progress:
                on_progress(job)
            if time.monotonic() > end:
                raise TimeoutError(f"job {jobid} still pending after {timeout} s")
            time.sleep(interval)
