"""The dev control plane's OIDC provider (`jesus dev up --oidc`, ADR 0026): ORY Hydra, in memory, with
TLS from the dev PKI, and our login and consent app (`oidc_login`) as its user store; kube-apiserver
trusts Hydra's ID tokens through a structured AuthenticationConfiguration.

`obtain_id_token` is the authorization-code flow (with PKCE) a browser would go through, driven without
one: it follows Hydra's redirects, fills in the login app's form with the user's dev password, and
trades the code for tokens at Hydra's token endpoint. Nothing here signs a token: every token comes
from Hydra.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

# The OAuth2 client kubectl's tokens are issued to: the API server's only accepted audience.
CLIENT_ID = "jesus-dev-kubectl"
# Where Hydra sends the browser with the code. Nobody listens there: the flow stops at that redirect and
# reads the code from it (a loopback redirect URI, as RFC 8252 has native apps use).
REDIRECT_URI = "http://127.0.0.1/jesus-dev-login/callback"
# The API server's names for OIDC users and groups: "oidc:ada@example.com", "oidc:team-a". The prefix
# keeps an IdP's names apart from every other authenticator's (system:*, certificates, tokens).
PREFIX = "oidc:"
SCOPES = ("openid", "email", "groups")
SETTINGS_FILE = "oidc.json"


class OidcError(Exception):
    """The OIDC provider or a login through it failed; the message says where and why."""


@dataclass(frozen=True)
class DevUser:
    """A person of the dev provider, and the groups its ID tokens carry (unprefixed)."""

    email: str
    groups: tuple[str, ...]


# Two teams, a reader and the platform: the people the chart's roles for people are shown with.
DEV_USERS = (
    DevUser("ada@example.com", ("team-a",)),
    DevUser("bob@example.com", ("team-b",)),
    DevUser("vera@example.com", ("auditors",)),
    DevUser("pat@example.com", ("platform",)),
)


@dataclass(frozen=True)
class OidcSettings:
    """Where one dev provider serves, as recorded in the state directory's oidc.json."""

    issuer: str  # exactly as Hydra's discovery document and its tokens' `iss` say it
    admin: str  # Hydra's admin API
    login: str  # our login and consent app
    ca_file: str  # the dev CA, which signed all three serving certificates
    users_file: str  # the dev users, their passwords and groups (mode 0600)
    client_id: str = CLIENT_ID

    def save(self, state_dir: Path) -> None:
        (state_dir / SETTINGS_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, state_dir: Path) -> OidcSettings | None:
        try:
            return cls(**json.loads((state_dir / SETTINGS_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


def write_users(path: Path, users: tuple[DevUser, ...] = DEV_USERS) -> None:
    """The login app's user store: each user with a fresh random password, readable by us only."""
    records = {
        user.email: {"password": secrets.token_urlsafe(18), "groups": list(user.groups)} for user in users
    }
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(records, indent=2) + "\n")


def read_users(path: Path) -> dict[str, dict[str, Any]]:
    """email -> {"password", "groups"}, as `write_users` wrote them."""
    try:
        users: dict[str, dict[str, Any]] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OidcError(f"cannot read the dev OIDC users from {path}: {exc}") from exc
    return users


def hydra_config(
    *, public_port: int, admin_port: int, login_url: str, cert: Path, key: Path, system_secret: str
) -> dict[str, Any]:
    """Hydra's configuration: in memory, TLS on both its ports, our app for login and consent."""
    return {
        "dsn": "memory",
        "log": {"level": "info", "format": "json", "leak_sensitive_values": False},
        "serve": {
            "public": {"host": "127.0.0.1", "port": public_port},
            "admin": {"host": "127.0.0.1", "port": admin_port},
            "tls": {"enabled": True, "cert": {"path": str(cert)}, "key": {"path": str(key)}},
            "cookies": {"secure": True},
        },
        "urls": {
            "self": {"issuer": f"https://127.0.0.1:{public_port}"},
            "login": f"{login_url}/login",
            "consent": f"{login_url}/consent",
        },
        "secrets": {"system": [system_secret]},
        "oauth2": {"pkce": {"enforced_for_public_clients": True}},
        "ttl": {"id_token": "1h", "access_token": "1h"},
    }


def hydra_args(config: Path) -> list[str]:
    """`hydra serve all`: --dev lets it keep its store in memory (SQLite), and --sqa-opt-out stops its
    usage reports (the dev plane calls nobody)."""
    return ["serve", "all", "--dev", "--sqa-opt-out", f"--config={config}"]


def kubectl_client(client_id: str = CLIENT_ID, **extra: Any) -> dict[str, Any]:
    """A public client (no secret, PKCE) that may ask for ID tokens with the scopes kubectl needs."""
    return {
        "client_id": client_id,
        "client_name": client_id,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "scope": " ".join(SCOPES),
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        # A first-party client: consent is our app's to give, not the person's to click.
        "skip_consent": True,
        **extra,
    }


def register_client(settings: OidcSettings, client: dict[str, Any]) -> None:
    """Create an OAuth2 client through Hydra's admin API."""
    with httpx.Client(verify=settings.ssl_context(), timeout=10) as http:
        response = http.post(f"{settings.admin}/admin/clients", json=client)
    if response.status_code != 201:
        raise OidcError(
            f"Hydra at {settings.admin} refused client {client.get('client_id')!r}: "
            f"HTTP {response.status_code} {response.text.strip()[:300]}"
        )


def discovered_issuer(public: str, ca_file: str) -> str:
    """The issuer Hydra's discovery document names (the API server compares it, and `iss`, exactly)."""
    with httpx.Client(verify=ssl.create_default_context(cafile=ca_file), timeout=5) as http:
        document = http.get(f"{public}/.well-known/openid-configuration").json()
    issuer: str = document["issuer"]
    return issuer


def authentication_config(settings: OidcSettings) -> dict[str, Any]:
    """kube-apiserver's structured AuthenticationConfiguration: ID tokens of this issuer, for the
    kubectl client, name the user by a verified email and carry its groups, both prefixed."""
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [
            {
                "issuer": {
                    "url": settings.issuer,
                    "audiences": [settings.client_id],
                    "certificateAuthority": Path(settings.ca_file).read_text(),
                },
                "claimValidationRules": [
                    {
                        "expression": "has(claims.email_verified) && claims.email_verified == true",
                        "message": "the ID token's email is not verified",
                    }
                ],
                "claimMappings": {
                    "username": {"claim": "email", "prefix": PREFIX},
                    "groups": {"claim": "groups", "prefix": PREFIX},
                },
                "userValidationRules": [
                    {
                        "expression": "!user.username.startsWith('system:')",
                        "message": "an OIDC user may not take a system: name",
                    }
                ],
            }
        ],
    }


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, read without checking its signature (the API server checks it)."""
    try:
        payload = token.split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise OidcError(f"not a JWT: {exc}") from exc
    return claims


_MAX_REDIRECTS = 12


def obtain_id_token(settings: OidcSettings, user: str, password: str, *, client_id: str = CLIENT_ID) -> str:
    """Log `user` in through Hydra (authorization code with PKCE) and return the ID token it issues."""
    verifier, challenge = _pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    query = {
        "client_id": client_id,
        "response_type": "code",
        "scope": " ".join(SCOPES),
        "redirect_uri": REDIRECT_URI,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    url = f"{settings.issuer.rstrip('/')}/oauth2/auth?{urlencode(query)}"
    with httpx.Client(verify=settings.ssl_context(), timeout=10, follow_redirects=False) as http:
        response = http.get(url)
        for _ in range(_MAX_REDIRECTS):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(REDIRECT_URI):
                    code = _code_from(location, state)
                    break
                response = http.get(location)
            elif response.status_code == 200 and str(response.url).startswith(f"{settings.login}/login"):
                # Our login app's form, filled in as a person would.
                login_challenge = parse_qs(urlsplit(str(response.url)).query).get("login_challenge", [""])[0]
                response = http.post(
                    f"{settings.login}/login",
                    data={"login_challenge": login_challenge, "username": user, "password": password},
                )
            else:
                raise OidcError(
                    f"logging {user} in stopped at {response.url}: HTTP {response.status_code} "
                    f"{_reason(response)}"
                )
        else:
            raise OidcError(f"logging {user} in took more than {_MAX_REDIRECTS} redirects")
        tokens = http.post(
            f"{settings.issuer.rstrip('/')}/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "client_id": client_id,
                "code_verifier": verifier,
            },
        )
    if tokens.status_code != 200:
        raise OidcError(f"Hydra's token endpoint refused the code for {user}: {_reason(tokens)}")
    id_token: str = tokens.json()["id_token"]
    if token_claims(id_token).get("nonce") != nonce:
        raise OidcError(f"the ID token Hydra issued for {user} does not carry this login's nonce")
    return id_token


def _code_from(location: str, state: str) -> str:
    params = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
    if "error" in params:
        raise OidcError(
            f"Hydra refused the login: {params['error']}: {params.get('error_description', '')}".strip()
        )
    if params.get("state") != state:
        raise OidcError("Hydra's redirect carries another login's state; refused")
    return params["code"]


def _reason(response: httpx.Response) -> str:
    """Why Hydra (or the login app) answered as it did: the OAuth2 error if it names one, else the body."""
    asked = {key: values[0] for key, values in parse_qs(urlsplit(str(response.url)).query).items()}
    if "error" in asked:  # Hydra's error page, reached by a redirect that names the error
        return f"{asked['error']}: {asked.get('error_description', '')}".strip(": ")
    text = response.text.strip()
    try:
        body = response.json()
    except ValueError:
        return text[:300]
    if isinstance(body, dict):
        return str(body.get("error_description") or body.get("error") or body.get("message") or text)[:300]
    return text[:300]


def kubeconfig(server: str, ca_file: str, user: str, id_token: str) -> dict[str, Any]:
    """A kubeconfig that presents `id_token` to the API server at `server` as `user`."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "jesus-dev", "cluster": {"server": server, "certificate-authority": ca_file}}],
        "users": [{"name": f"{PREFIX}{user}", "user": {"token": id_token}}],
        "contexts": [{"name": "jesus-dev", "context": {"cluster": "jesus-dev", "user": f"{PREFIX}{user}"}}],
        "current-context": "jesus-dev",
    }
