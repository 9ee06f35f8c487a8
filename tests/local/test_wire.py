"""The table helpers' requests carry a SigV4 signature AWS would accept (so the plugin's
fixtures also serve a suite pointed at real DynamoDB): checked against botocore's own
signer on the request as it arrived."""

from __future__ import annotations

import datetime
import http.server
import json
import threading
from typing import Any

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lift_asgi.local import dynamodb_request


def test_requests_are_signed_as_botocore_signs_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    seen: dict[str, Any] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen["headers"] = dict(self.headers.items())
            seen["body"] = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert dynamodb_request(endpoint, "ListTables", {}, region="eu-west-1") == {}
    finally:
        server.shutdown()
        server.server_close()
    headers = seen["headers"]
    expected = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=seen["body"],
        headers={
            "Content-Type": headers["Content-Type"],
            "X-Amz-Target": headers["X-Amz-Target"],
            "Host": headers["Host"],
        },
    )
    # botocore signs at its own "now": make that the moment our request was signed.
    signed_at = datetime.datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at)
    SigV4Auth(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        "dynamodb",
        "eu-west-1",
    ).add_auth(expected)
    assert headers["Authorization"] == expected.headers["Authorization"]
    assert json.loads(seen["body"]) == {}
