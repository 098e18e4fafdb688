"""The dev OIDC provider's parts that need no Hydra: its configuration, the API server's authentication
configuration, the login and consent app (against a stand-in for Hydra's admin API), the login flow's
refusals, the serving certificates, and `jesus dev up --oidc` / `login` over a recorded plane."""

from __future__ import annotations

import base64
import json
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from ruamel.yaml import YAML
from starlette.testclient import TestClient
from tests.unit.devcluster.test_devcluster_local import as_etcd, record

from jesus.cli import main
from jesus.devcluster import oidc, pki
from jesus.devcluster.oidc_login import login_app

ADMIN = "https://hydra.test:4445"


def settings(tmp_path: Path) -> oidc.OidcSettings:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return oidc.OidcSettings(
        issuer="https://127.0.0.1:4444",
        admin=ADMIN,
        login="https://127.0.0.1:4446",
        ca_file=str(ca),
        users_file=str(tmp_path / "users.json"),
    )


def test_the_api_server_takes_the_issuers_tokens_for_kubectl_only_and_prefixes_the_names(
    tmp_path: Path,
) -> None:
    config = oidc.authentication_config(settings(tmp_path))
    assert config["apiVersion"] == "apiserver.config.k8s.io/v1"
    [jwt] = config["jwt"]
    assert jwt["issuer"]["url"] == "https://127.0.0.1:4444"
    assert jwt["issuer"]["audiences"] == ["jesus-dev-kubectl"]
    assert jwt["issuer"]["certificateAuthority"].startswith("-----BEGIN CERTIFICATE-----")
    assert jwt["claimMappings"] == {
        "username": {"claim": "email", "prefix": "oidc:"},
        "groups": {"claim": "groups", "prefix": "oidc:"},
    }
    assert "claims.email_verified == true" in jwt["claimValidationRules"][0]["expression"]


def test_hydra_keeps_its_store_in_memory_serves_tls_and_sends_people_to_our_app() -> None:
    config = oidc.hydra_config(
        public_port=1,
        admin_port=2,
        login_url="https://127.0.0.1:3",
        cert=Path("c"),
        key=Path("k"),
        system_secret="s",
    )
    assert config["dsn"] == "memory"
    assert config["serve"]["tls"] == {"enabled": True, "cert": {"path": "c"}, "key": {"path": "k"}}
    assert config["urls"]["login"] == "https://127.0.0.1:3/login"
    assert config["urls"]["consent"] == "https://127.0.0.1:3/consent"
    assert config["urls"]["self"]["issuer"] == "https://127.0.0.1:1"
    assert {"--dev", "--sqa-opt-out"} <= set(oidc.hydra_args(Path("h.yaml")))


def test_the_dev_users_get_fresh_passwords_only_their_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    oidc.write_users(path)
    users = oidc.read_users(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(users) == {user.email for user in oidc.DEV_USERS}
    passwords = [user["password"] for user in users.values()]
    assert len(set(passwords)) == len(passwords) and all(len(p) >= 20 for p in passwords)
    oidc.write_users(path)
    assert oidc.read_users(path)["ada@example.com"]["password"] != users["ada@example.com"]["password"]
    with pytest.raises(oidc.OidcError, match=r"cannot read the dev OIDC users from .*missing\.json"):
        oidc.read_users(tmp_path / "missing.json")


def test_a_token_that_is_no_jwt_is_named_so() -> None:
    for token in ("", "abc", "a.!!!.c", "a." + base64.urlsafe_b64encode(b"[not json").decode() + ".c"):
        with pytest.raises(oidc.OidcError, match="not a JWT"):
            oidc.token_claims(token)


def test_the_login_flow_refuses_hydras_error_and_another_logins_state() -> None:
    denied = f"{oidc.REDIRECT_URI}?error=access_denied&error_description=The+user+said+no&state=s1"
    with pytest.raises(oidc.OidcError, match="Hydra refused the login: access_denied: The user said no"):
        oidc._code_from(denied, "s1")
    with pytest.raises(oidc.OidcError, match="another login's state"):
        oidc._code_from(f"{oidc.REDIRECT_URI}?code=c&state=forged", "s1")
    assert oidc._code_from(f"{oidc.REDIRECT_URI}?code=c&state=s1", "s1") == "c"


class FakeHydra:
    """Hydra's admin API for login and consent requests, recording what the app accepted."""

    def __init__(self, subject: str = "ada@example.com") -> None:
        self.subject = subject
        self.accepted: list[tuple[str, dict[str, Any]]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/admin/oauth2/auth/requests/")
        challenge = dict(request.url.params)
        if "used" in challenge.values():
            return httpx.Response(410, json={"error": "request already handled"})
        if request.method == "GET":
            return httpx.Response(
                200, json={"skip": False, "subject": self.subject, "requested_scope": ["openid", "groups"]}
            )
        self.accepted.append((path, json.loads(request.content)))
        return httpx.Response(
            200, json={"redirect_to": f"https://127.0.0.1:4444/oauth2/auth?{path}=verifier"}
        )


@pytest.fixture
def hydra() -> FakeHydra:
    return FakeHydra()


@pytest.fixture
def app(hydra: FakeHydra) -> TestClient:
    users = {
        "ada@example.com": {"password": "right-password", "groups": ["team-a"]},
        "bob@example.com": {"password": "bobs-password", "groups": ["team-b"]},
    }
    return TestClient(login_app(users, ADMIN, None, transport=httpx.MockTransport(hydra.handle)))


def test_the_login_app_accepts_a_dev_user_with_its_password_and_tells_hydra_who(
    app: TestClient, hydra: FakeHydra
) -> None:
    form = app.get("/login", params={"login_challenge": "c1"})
    assert form.status_code == 200 and 'name="login_challenge" value="c1"' in form.text
    done = app.post(
        "/login",
        data={"login_challenge": "c1", "username": "ada@example.com", "password": "right-password"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "https://127.0.0.1:4444/oauth2/auth?login/accept=verifier"
    assert hydra.accepted == [("login/accept", {"subject": "ada@example.com", "remember": False})]


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("ada@example.com", "wrong"),
        ("ada@example.com", ""),
        ("ada@example.com", "bobs-password"),  # another user's password
        ("mallory@example.com", "right-password"),
        ("", ""),
        ("ADA@example.com", "right-password"),  # careless: names are exact
    ],
)
def test_the_login_app_refuses_a_wrong_password_or_an_unknown_user(
    app: TestClient, hydra: FakeHydra, username: str, password: str
) -> None:
    refused = app.post("/login", data={"login_challenge": "c1", "username": username, "password": password})
    assert refused.status_code == 401
    assert "Unknown user or wrong password." in refused.text
    assert hydra.accepted == []


def test_the_login_app_escapes_a_hostile_challenge_and_wants_one(app: TestClient) -> None:
    hostile = '"><script>alert(1)</script>'
    form = app.get("/login", params={"login_challenge": hostile})
    assert "<script>" not in form.text and "&lt;script&gt;" in form.text
    assert app.get("/login").status_code == 400
    assert (
        app.post("/login", data={"username": "ada@example.com", "password": "right-password"}).status_code
        == 400
    )
    assert app.get("/consent").status_code == 400


def test_a_challenge_hydra_no_longer_knows_is_an_error_not_a_login(app: TestClient) -> None:
    answer = app.post(
        "/login",
        data={"login_challenge": "used", "username": "ada@example.com", "password": "right-password"},
    )
    assert answer.status_code == 502
    assert answer.text == "Hydra's admin API answered login/accept with HTTP 410"


def test_consent_puts_the_users_groups_and_verified_email_in_the_id_token(
    app: TestClient, hydra: FakeHydra
) -> None:
    done = app.get("/consent", params={"consent_challenge": "k1"}, follow_redirects=False)
    assert done.status_code == 303
    [(path, body)] = hydra.accepted
    assert path == "consent/accept"
    assert body["grant_scope"] == ["openid", "groups"]
    assert body["session"]["id_token"] == {
        "email": "ada@example.com",
        "email_verified": True,
        "groups": ["team-a"],
    }


def test_consent_for_someone_the_app_does_not_know_is_refused(app: TestClient, hydra: FakeHydra) -> None:
    hydra.subject = "mallory@example.com"
    refused = app.get("/consent", params={"consent_challenge": "k1"})
    assert refused.status_code == 403
    assert hydra.accepted == []


def test_the_providers_serving_certificate_is_for_loopback_and_signed_by_the_dev_ca(tmp_path: Path) -> None:
    pki.generate_pki(tmp_path)
    pki.issue_serving_cert(tmp_path, "hydra", "hydra")
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / "hydra.crt").read_bytes())
    assert cert.issuer == ca.subject
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert oct(stat.S_IMODE((tmp_path / "hydra.key").stat().st_mode)) == "0o600"


def test_up_oidc_over_a_plane_without_it_says_to_restart_and_login_needs_oidc(
    state: Path,
    component: subprocess.Popen[bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["dev", "login", "ada@example.com"]) == 2
    assert "no control plane is running: start one with `jesus dev up --oidc`" in capsys.readouterr().err
    record(state, as_etcd(component))
    assert main(["dev", "up", "--oidc"]) == 2
    assert "runs without OIDC: run `jesus dev down`, then `jesus dev up --oidc`" in capsys.readouterr().err
    assert main(["dev", "login", "ada@example.com"]) == 2
    captured = capsys.readouterr()
    assert "runs without OIDC" in captured.err and captured.out == ""
    assert component.poll() is None


def test_the_security_docs_give_real_providers_the_dev_planes_rules_and_prefixes(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "security.md").read_text()
    blocks = [YAML(typ="safe").load(block) for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]
    kinds = [block.get("kind") if isinstance(block, dict) else None for block in blocks]
    documented = blocks[kinds.index("AuthenticationConfiguration")]
    [dev] = oidc.authentication_config(settings(tmp_path))["jwt"]
    assert documented["apiVersion"] == "apiserver.config.k8s.io/v1"
    [jwt] = documented["jwt"]
    for field in ("claimValidationRules", "claimMappings", "userValidationRules"):
        assert jwt[field] == dev[field], f"docs/security.md's {field} differs from the dev control plane's"
