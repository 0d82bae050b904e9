"""Certificates from an ACME CA (Let's Encrypt), for `certificates:` entries with `acme:`.

Imported only when a certificate has `acme:` (or by `xdsgen certs`), so cron start-up stays
small; the `acme` library (certbot's) behind it is imported later still, when a certificate
must actually be obtained. One job per module:

- challenges: the seams. HTTP-01 tokens are published by the caller (apply serves them
  through Envoy); DNS-01 records by `hook.DnsHook`.
- hook: runs the dns_hook program (`HOOK add FQDN VALUE`, `HOOK remove FQDN VALUE`).
- account: the ACME account (ECDSA P-256 key, registration), kept and reused.
- order: one order: authorizations, challenges, finalize with a fresh key, the chain.
- storage: reading certificates, installing a new key and chain, never a mismatched pair.
- renewal: is a certificate due (missing, expiring, domains or CA changed)?
- records: per certificate, the last issuance and the back-off after failures.
- failures: the CA's answers (problem documents, network errors) as AcmeError.
- engine: all of it for the certificates of a model (`renew_certificates`).
"""
