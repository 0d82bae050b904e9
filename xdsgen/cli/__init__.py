"""The command line: parse options, call one function, hand the result to a reporter.

base.py     the group, output options, --format, the reporter, errors -> exit codes
config.py   validate, render, bootstrap, schema, explain, firewall
live.py     apply (--watch), rollback, status
certs.py    certs list, certs renew
migrate.py  import, export k8s, export gateway-api
extras.py   cron-script, demo
"""

from __future__ import annotations

from xdsgen.cli import certs, config, extras, live, migrate  # noqa: F401 - they register
from xdsgen.cli.base import main

__all__ = ["main"]
