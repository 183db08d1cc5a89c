"""A stand-in OpenID Connect provider on 127.0.0.1 that speaks the real protocol: the discovery document, the
authorization endpoint (a 302 back with a code and the state), the token endpoint (client authentication, the
code used once, the same redirect URI, and the PKCE verifier checked against the challenge), the JWKS, and an ID
token signed RS256 with the key the JWKS publishes.

Tests steer it through attributes: `user`, whose sign-in the next authorization is (as if they had typed their
password), and `flaw`, something wrong with the next ID tokens (FLAWS). It records `authorizations` and
`token_requests`, the parameters it was sent.

A plugin of the suite (conftest.py's PLUGINS): the `fake` fixture, and for the tests of signed-in users the app's
settings against it (`oidc`), a browser of one's own (`browser`) and the whole sign-in round trip (`sign_in`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID, CLIENT_SECRET = "flakewright-test", "test-client-secret"
# What can be wrong with an ID token; the app must refuse each.
FLAWS = ("tampered", "expired", "audience", "audience, our client as azp", "issuer", "nonce", "foreign key",
         "unsigned", "email unverified", "email unverified, as text")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeOIDC:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig", "alg": "RS256"})
        self.user = "alice@example.com"
        self.flaw: str | None = None
        self.codes: dict[str, dict] = {}
        self.authorizations: list[dict] = []
        self.token_requests: list[dict] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeOIDC:
        # shutdown() waits for the poll: the default 0.5 s would be paid by every test that uses a fake
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def discovery(self) -> dict:
        return {"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]}

    def authorize(self, params: dict) -> tuple[int, dict]:
        """Where the browser is sent to sign in: the user (self.user) is taken to have done so."""
        self.authorizations.append(params)
        wanted = {"response_type": "code", "client_id": CLIENT_ID, "code_challenge_method": "S256"}
        if any(params.get(name) != value for name, value in wanted.items()) or \
                "openid" not in params.get("scope", "").split() or not all(
                    params.get(name) for name in ("redirect_uri", "state", "nonce", "code_challenge")):
            return 400, {}
        code = secrets.token_urlsafe(16)
        self.codes[code] = dict(params, user=self.user)
        back = f"{params['redirect_uri']}?{urlencode({'code': code, 'state': params['state']})}"
        return 302, {"Location": back}

    def token(self, params: dict, authorization: str) -> tuple[int, dict]:
        """The app exchanges the code: it must prove it is the client, and that it started this authorization."""
        self.token_requests.append(dict(params, authorization=authorization))
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        else:
            client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        if (client_id, secret) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client"}
        granted = self.codes.pop(params.get("code", ""), None)  # a code counts once
        challenge = b64url(hashlib.sha256(params.get("code_verifier", "").encode()).digest())
        if params.get("grant_type") != "authorization_code" or not granted or \
                params.get("redirect_uri") != granted["redirect_uri"] or challenge != granted["code_challenge"]:
            return 400, {"error": "invalid_grant"}
        return 200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 3600,
                     "scope": "openid email profile", "id_token": self.id_token(granted["user"], granted["nonce"])}

    def id_token(self, user: str, nonce: str) -> str:
        now, flaw = int(time.time()), self.flaw
        claims = {"iss": self.url, "sub": hashlib.sha256(user.encode()).hexdigest()[:20], "aud": CLIENT_ID,
                  "iat": now, "exp": now + 600, "nonce": nonce, "email": user, "email_verified": True}
        claims.update({"expired": {"iat": now - 7200, "exp": now - 3600}, "audience": {"aud": "another-client"},
                       "audience, our client as azp": {"aud": "another-client", "azp": CLIENT_ID},
                       "issuer": {"iss": "https://issuer.invalid"}, "nonce": {"nonce": "not-the-apps"},
                       "email unverified": {"email_verified": False},
                       "email unverified, as text": {"email_verified": "false"}}.get(flaw, {}))
        header = {"alg": "RS256", "kid": "fake-1"}
        if flaw == "unsigned":
            return f"{b64url(json.dumps({'alg': 'none'}).encode())}.{b64url(json.dumps(claims).encode())}."
        signer = RSAKey.generate_key(2048, parameters={"kid": "fake-1"}) if flaw == "foreign key" else self.key
        token = jwt.encode(header, claims, signer)
        if flaw == "tampered":  # another user's name in the payload, the signature left as it was
            head, _, signature = token.split(".")
            forged = b64url(json.dumps(dict(claims, email="mallory@example.com")).encode())
            token = f"{head}.{forged}.{signature}"
        return token


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    @property
    def fake(self) -> FakeOIDC:
        return self.server.fake

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path.endswith("/.well-known/openid-configuration"):  # under any prefix: its issuer is always self.url
            return self.reply(200, self.fake.discovery())
        if path == "/jwks":
            return self.reply(200, {"keys": [self.fake.key.as_dict(private=False)]})
        if path == "/authorize":
            status, headers = self.fake.authorize(dict(parse_qsl(query)))
            return self.reply(status, {"error": "invalid_request"} if status == 400 else {}, headers)
        self.reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        if urlsplit(self.path).path != "/token":
            return self.reply(404, {"error": "not found"})
        status, answer = self.fake.token(dict(parse_qsl(body)), self.headers.get("Authorization", ""))
        self.reply(status, answer)

    def reply(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Cache-Control": "no-store", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake():
    with FakeOIDC() as provider:
        yield provider


def oidc(fake: FakeOIDC, **extra: str) -> dict[str, str]:
    """The app's settings for signing in with the fake provider: anyone @example.com may."""
    return {"OIDC_ISSUER": fake.url, "OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "ALLOWED_USERS": "@example.com", **extra}


def browser(url: str, address: str = "127.0.0.1") -> httpx.Client:
    """A browser of its own (its own cookies), connecting from `address`."""
    return httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address=address))


def sign_in(browser: httpx.Client, fake: FakeOIDC, user: str) -> httpx.Response:
    """The whole round trip: the app sends the browser to the provider, where `user` signs in, and back."""
    fake.user = user
    return browser.get("/signin/start", follow_redirects=True)
