"""The ACME account: an ECDSA P-256 key and its registration with the CA, made once and reused.

Kept per CA under the config directory's state dir, DIR/.xdsgen/acme/<hash of the
directory URL>/ (account.key 0600, account.json), so staging and production accounts never
mix and moving the config directory moves the account with it. Registering agrees to the
CA's terms of service, as `certbot --agree-tos` does.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Optional

from xdsgen import __version__
from xdsgen.errors import IOProblem
from xdsgen.files import write_atomic
from xdsgen.live.lock import state_dir
from xdsgen.model.certificates import AcmeSettings

ACCOUNT_KEY = "account.key"
ACCOUNT_FILE = "account.json"
NETWORK_TIMEOUT = 30  # seconds per request to the CA
USER_AGENT = f"xdsgen/{__version__}"


def account_dir(config_dir: str, directory_url: str) -> str:
    digest = hashlib.sha256(directory_url.encode()).hexdigest()[:16]
    return os.path.join(state_dir(config_dir), "acme", digest)


def _load_or_create_key(path: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        with open(path, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("not an EC key")
        return key
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError) as exc:
        raise IOProblem(
            f"cannot use the ACME account key {path} ({exc}); move it away to register a new "
            "account"
        ) from None
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(path, pem.decode("ascii"), mode=0o600)
    return key


@dataclass
class Account:
    """A connected client with its account (the `acme` library's objects)."""

    client: Any  # acme.client.ClientV2, its net signed with the account key
    key: Any  # josepy.JWKEC: answers challenges (key authorizations)
    uri: str
    created: bool  # registered in this run


def _stored(path: str) -> Optional[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("uri"), str) else None


def _save(path: str, uri: str, settings: AcmeSettings) -> None:
    text = json.dumps(
        {"uri": uri, "email": settings.email, "directory": settings.directory}, indent=2
    )
    write_atomic(path, text + "\n")


def connect(settings: AcmeSettings, config_dir: str) -> Account:
    """The client for the settings' CA, signed in with the stored account (registered on first
    use; a CA that forgot the account gets it registered again by `register`)."""
    import josepy
    from acme import client, messages

    directory = account_dir(config_dir, settings.directory)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise IOProblem(f"cannot create {directory}: {exc.strerror}") from None
    jwk = josepy.JWKEC(key=_load_or_create_key(os.path.join(directory, ACCOUNT_KEY)))
    net = client.ClientNetwork(
        jwk, alg=josepy.ES256, user_agent=USER_AGENT, timeout=NETWORK_TIMEOUT
    )
    # requests takes a CA file where acme's annotation says bool.
    net.verify_ssl = settings.ca_bundle or True  # type: ignore[assignment]
    acme_client = client.ClientV2(client.ClientV2.get_directory(settings.directory, net), net)
    stored = _stored(os.path.join(directory, ACCOUNT_FILE))
    if stored is None:
        return register(acme_client, jwk, settings, config_dir)
    body = messages.Registration.from_data(email=settings.email)
    account = messages.RegistrationResource(uri=stored["uri"], body=body)
    net.account = account
    if stored.get("email") != settings.email:
        acme_client.update_registration(account, body)
        _save(os.path.join(directory, ACCOUNT_FILE), stored["uri"], settings)
    return Account(acme_client, jwk, stored["uri"], created=False)


def register(acme_client: Any, jwk: Any, settings: AcmeSettings, config_dir: str) -> Account:
    """Register the account key (a CA that knows the key answers with the existing account)."""
    from acme import errors, messages

    acme_client.net.account = None
    registration = messages.NewRegistration.from_data(
        email=settings.email, terms_of_service_agreed=True
    )
    try:
        uri = acme_client.new_account(registration).uri
    except errors.ConflictError as exc:  # the key is registered already
        uri = exc.location
        acme_client.net.account = messages.RegistrationResource(uri=uri, body=registration)
    _save(os.path.join(account_dir(config_dir, settings.directory), ACCOUNT_FILE), uri, settings)
    return Account(acme_client, jwk, uri, created=True)
