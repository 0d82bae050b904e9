"""One ACME order: new order for the domains, one challenge per pending authorization, the
publisher makes them visible, the CA validates, finalize with a fresh P-256 key, the chain.

Authorizations the CA already holds as valid (it may reuse them) need no challenge.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Union

from xdsgen.acme.account import Account
from xdsgen.acme.challenges import (
    Dns01Challenge,
    Dns01Publisher,
    Http01Challenge,
    Http01Publisher,
)
from xdsgen.errors import AcmeError
from xdsgen.model.certificates import DNS01, HTTP01

ORDER_TIMEOUT = 90.0  # seconds for validation and issuance once the challenges are answered


@dataclass(frozen=True)
class Issued:
    key_pem: bytes  # PKCS#8, unencrypted
    chain_pem: bytes  # the leaf first, then the intermediates
    challenged: tuple[str, ...]  # the domains whose challenge was answered in this order


def new_private_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def issue(
    account: Account,
    certificate: str,
    domains: tuple[str, ...],
    challenge_type: str,
    publisher: Union[Http01Publisher, Dns01Publisher],
    timeout: float = ORDER_TIMEOUT,
) -> Issued:
    """Raises AcmeError for what this module sees, and the acme library's errors otherwise
    (failures.translated turns those into AcmeError)."""
    from acme import challenges, crypto_util, messages

    wanted = challenges.HTTP01 if challenge_type == HTTP01 else challenges.DNS01
    key_pem = new_private_key()
    csr_pem = crypto_util.make_csr(key_pem, list(domains))
    order = account.client.new_order(csr_pem)
    answers: list[tuple[Any, Any]] = []  # (challenge body, response)
    http: list[Http01Challenge] = []
    dns: list[Dns01Challenge] = []
    for authzr in order.authorizations:
        name = authzr.body.identifier.value
        if authzr.body.status == messages.STATUS_VALID:
            continue
        if authzr.body.status != messages.STATUS_PENDING:
            raise AcmeError(certificate, name, f"the CA's authorization is {authzr.body.status}")
        offered = [c for c in authzr.body.challenges if isinstance(c.chall, wanted)]
        if not offered:
            raise AcmeError(certificate, name, f"the CA offers no {challenge_type} challenge")
        body = offered[0]
        response, validation = body.response_and_validation(account.key)
        if challenge_type == DNS01:
            dns.append(Dns01Challenge(name, body.chall.validation_domain_name(name), validation))
        else:
            http.append(Http01Challenge(name, body.chall.encode("token"), validation))
        answers.append((body, response))
    published: list[Any] = http or dns
    if published:
        publisher.publish(published)
    try:
        for body, response in answers:
            account.client.answer_challenge(body, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        order = account.client.poll_authorizations(order, deadline)
        order = account.client.finalize_order(order, deadline)
    finally:
        if published:
            publisher.withdraw(published)
    return Issued(
        key_pem=key_pem,
        chain_pem=order.fullchain_pem.encode("ascii"),
        challenged=tuple(c.domain for c in published),
    )
