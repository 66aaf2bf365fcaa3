"""Inbound Bot Framework JWTs, checked against keys served over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from cards.actions import Activity
from cards.auth import BotAuthError, BotAuthFailure, BotFrameworkAuthenticator
from sandbox.server import serve_in_background

APP_ID = "6c1e7f52-8f0b-4f8e-9d7e-2a4b9f0c1d11"
ISSUER = "https://api.botframework.com"
SERVICE_URL = "https://smba.trafficmanager.net/amer/"
CHANNEL = "msteams"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str, endorsements: list[str]) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "endorsements": endorsements})
    return jwk


class KeyServer:
    """Serves OpenID metadata and a JWKS the test can change; counts what was fetched."""

    def __init__(self) -> None:
        self.jwks: list[dict[str, Any]] = []
        self.fetches: list[str] = []
        self.failing = False
        self.base = ""

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/v1/.well-known/openidconfiguration"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.fetches.append(request.path)
        if self.failing:
            response = Response("unavailable", status=503)
        elif request.path == "/v1/.well-known/openidconfiguration":
            response = Response(
                json.dumps(
                    {
                        "issuer": ISSUER,
                        "jwks_uri": f"{self.base}/v1/.well-known/keys",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                ),
                content_type="application/json",
            )
        elif request.path == "/v1/.well-known/keys":
            response = Response(json.dumps({"keys": self.jwks}), content_type="application/json")
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)


@pytest.fixture(scope="module")
def key_server() -> Iterator[KeyServer]:
    app = KeyServer()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.base = f"http://127.0.0.1:{server.server_port}"
    thread = serve_in_background(server)
    yield app
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def teams_key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture
def server(key_server: KeyServer, teams_key: rsa.RSAPrivateKey) -> KeyServer:
    key_server.jwks = [public_jwk(teams_key, "key-1", ["msteams", "webchat"])]
    key_server.fetches.clear()
    key_server.failing = False
    return key_server


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def authenticator(server: KeyServer, clock: FakeMonotonic) -> Iterator[BotFrameworkAuthenticator]:
    with requests.Session() as session:
        yield BotFrameworkAuthenticator(server.metadata_url, APP_ID, session, monotonic=clock)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": APP_ID,
        "serviceurl": SERVICE_URL,
        "appid": "d6d49420-f39b-4df7-a1dc-d59a935871db",
        "nbf": now - 60,
        "exp": now + 3600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: rsa.RSAPrivateKey, kid: str = "key-1", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm="RS256", headers={"kid": kid})


def bearer(token: str) -> str:
    return f"Bearer {token}"


def refused(
    authenticator: BotFrameworkAuthenticator,
    header: str | None,
    addressing: tuple[str, str] = (SERVICE_URL, CHANNEL),
) -> BotAuthError:
    with pytest.raises(BotAuthError) as caught:
        authenticator.authenticate(header, addressing)
    return caught.value


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_token_signed_by_a_published_key_is_accepted(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    result = authenticator.authenticate(bearer(sign(teams_key)), (SERVICE_URL, CHANNEL))

    assert result.audience == APP_ID
    assert result.issuer == ISSUER
    assert result.service_url == SERVICE_URL
    assert result.key_id == "key-1"
    assert result.app_id == "d6d49420-f39b-4df7-a1dc-d59a935871db"


def test_the_activity_itself_can_be_given_for_service_url_and_channel(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    activity = Activity.model_validate(
        {"type": "message", "serviceUrl": SERVICE_URL, "channelId": CHANNEL, "text": "help"}
    )
    assert authenticator.authenticate(bearer(sign(teams_key)), activity).channel_id == CHANNEL


def test_a_forged_token_signed_by_another_key_is_refused(
    authenticator: BotFrameworkAuthenticator, other_key: rsa.RSAPrivateKey
) -> None:
    token = sign(other_key)
    error = refused(authenticator, bearer(token))
    assert error.reason is BotAuthFailure.BAD_SIGNATURE
    assert token not in str(error)


def test_an_expired_token_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    old = int(time.time()) - 6 * 60
    error = refused(authenticator, bearer(sign(teams_key, exp=old, nbf=old - 3600)))
    assert error.reason is BotAuthFailure.EXPIRED


def test_a_token_expired_within_the_five_minute_skew_is_accepted(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    recent = int(time.time()) - 4 * 60
    token = sign(teams_key, exp=recent, nbf=recent - 3600)
    assert authenticator.authenticate(bearer(token), (SERVICE_URL, CHANNEL)).key_id == "key-1"


def test_a_token_not_yet_valid_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    later = int(time.time()) + 10 * 60
    error = refused(authenticator, bearer(sign(teams_key, nbf=later, exp=later + 3600)))
    assert error.reason is BotAuthFailure.NOT_YET_VALID


def test_a_token_without_expiry_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    error = refused(authenticator, bearer(sign(teams_key, exp=None)))
    assert error.reason is BotAuthFailure.MISSING_CLAIM


def test_a_token_for_another_bot_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    error = refused(authenticator, bearer(sign(teams_key, aud="some-other-bot")))
    assert error.reason is BotAuthFailure.WRONG_AUDIENCE


def test_a_token_from_another_issuer_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    error = refused(authenticator, bearer(sign(teams_key, iss="https://sts.windows.net/evil/")))
    assert error.reason is BotAuthFailure.WRONG_ISSUER


def test_an_unsigned_token_is_refused_before_any_key_is_fetched(
    authenticator: BotFrameworkAuthenticator, server: KeyServer
) -> None:
    token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': 'key-1'})}.{b64(claims())}."
    error = refused(authenticator, bearer(token))
    assert error.reason is BotAuthFailure.UNSIGNED
    assert server.fetches == []


def test_an_hmac_token_keyed_with_the_public_key_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    public_pem = (
        teams_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "key-1"}
    unsigned = f"{b64(header)}.{b64(claims())}".encode()
    signature = hmac.new(public_pem.encode(), unsigned, hashlib.sha256).digest()
    token = f"{unsigned.decode()}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    error = refused(authenticator, bearer(token))
    assert error.reason is BotAuthFailure.WRONG_ALGORITHM


def test_a_token_with_its_signature_stripped_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    header_and_payload = sign(teams_key).rsplit(".", 1)[0]
    error = refused(authenticator, bearer(header_and_payload + "."))
    assert error.reason in {BotAuthFailure.BAD_SIGNATURE, BotAuthFailure.MALFORMED}


def test_a_token_for_another_service_url_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    token = sign(teams_key, serviceurl="https://smba.trafficmanager.net/emea/")
    error = refused(authenticator, bearer(token))
    assert error.reason is BotAuthFailure.SERVICE_URL_MISMATCH


def test_a_service_url_differing_only_by_the_trailing_slash_is_accepted(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    token = sign(teams_key, serviceurl=SERVICE_URL.rstrip("/"))
    assert authenticator.authenticate(bearer(token), (SERVICE_URL, CHANNEL)).key_id == "key-1"


def test_a_token_without_a_service_url_claim_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    error = refused(authenticator, bearer(sign(teams_key, serviceurl=None)))
    assert error.reason is BotAuthFailure.MISSING_CLAIM


def test_a_key_not_endorsed_for_the_channel_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey, server: KeyServer
) -> None:
    server.jwks = [public_jwk(teams_key, "key-1", ["webchat"])]
    error = refused(authenticator, bearer(sign(teams_key)))
    assert error.reason is BotAuthFailure.CHANNEL_NOT_ENDORSED


def test_an_activity_without_a_channel_is_refused(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey
) -> None:
    error = refused(authenticator, bearer(sign(teams_key)), (SERVICE_URL, ""))
    assert error.reason is BotAuthFailure.MISSING_CLAIM


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, BotAuthFailure.MISSING_HEADER),
        ("", BotAuthFailure.MISSING_HEADER),
        ("Basic dXNlcjpwYXNz", BotAuthFailure.NOT_BEARER),
        ("Bearer", BotAuthFailure.NOT_BEARER),
        ("Bearer not-a-jwt", BotAuthFailure.MALFORMED),
    ],
)
def test_a_request_without_a_bearer_jwt_is_refused(
    authenticator: BotFrameworkAuthenticator, header: str | None, reason: BotAuthFailure
) -> None:
    assert refused(authenticator, header).reason is reason


def test_a_rotated_key_is_fetched_when_a_token_names_it(
    authenticator: BotFrameworkAuthenticator,
    teams_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    server: KeyServer,
    clock: FakeMonotonic,
) -> None:
    authenticator.authenticate(bearer(sign(teams_key)), (SERVICE_URL, CHANNEL))
    server.jwks = [public_jwk(other_key, "key-2", ["msteams"])]
    clock.now += 60

    result = authenticator.authenticate(
        bearer(sign(other_key, kid="key-2")), (SERVICE_URL, CHANNEL)
    )

    assert result.key_id == "key-2"
    assert server.fetches.count("/v1/.well-known/keys") == 2


def test_known_keys_are_served_from_the_cache(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey, server: KeyServer
) -> None:
    for _ in range(5):
        authenticator.authenticate(bearer(sign(teams_key)), (SERVICE_URL, CHANNEL))
    assert server.fetches.count("/v1/.well-known/keys") == 1


def test_unknown_key_ids_refetch_at_most_once_per_cooldown(
    authenticator: BotFrameworkAuthenticator,
    teams_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    server: KeyServer,
    clock: FakeMonotonic,
) -> None:
    authenticator.authenticate(bearer(sign(teams_key)), (SERVICE_URL, CHANNEL))
    clock.now += 60
    reasons = {
        refused(authenticator, bearer(sign(other_key, kid=f"forged-{n}"))).reason for n in range(20)
    }
    assert reasons == {BotAuthFailure.UNKNOWN_KEY}
    assert server.fetches.count("/v1/.well-known/keys") == 2


def test_keys_older_than_their_max_age_are_refetched(
    authenticator: BotFrameworkAuthenticator,
    teams_key: rsa.RSAPrivateKey,
    server: KeyServer,
    clock: FakeMonotonic,
) -> None:
    authenticator.authenticate(bearer(sign(teams_key)), (SERVICE_URL, CHANNEL))
    clock.now += 25 * 3600
    authenticator.authenticate(bearer(sign(teams_key)), (SERVICE_URL, CHANNEL))
    assert server.fetches.count("/v1/.well-known/keys") == 2


def test_cached_keys_keep_working_when_a_refresh_fails(
    authenticator: BotFrameworkAuthenticator,
    teams_key: rsa.RSAPrivateKey,
    server: KeyServer,
    clock: FakeMonotonic,
) -> None:
    authenticator.authenticate(bearer(sign(teams_key)), (SERVICE_URL, CHANNEL))
    server.failing = True
    clock.now += 25 * 3600
    result = authenticator.authenticate(bearer(sign(teams_key)), (SERVICE_URL, CHANNEL))
    assert result.key_id == "key-1"


def test_no_keys_at_all_refuses_as_keys_unavailable(
    authenticator: BotFrameworkAuthenticator, teams_key: rsa.RSAPrivateKey, server: KeyServer
) -> None:
    server.failing = True
    assert refused(authenticator, bearer(sign(teams_key))).reason is BotAuthFailure.KEYS_UNAVAILABLE
