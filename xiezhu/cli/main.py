"""The ``xiezhu`` command line: thin commands over the service layer, one clear line on error.

Each command group is a module of this package; this one gathers them under the root command
and its global options (decision 36).
"""
from __future__ import annotations

from xiezhu.cli.alerts import app as alerts_app
from xiezhu.cli.cases import app as cases_app
from xiezhu.cli.catalogue import app as catalogue_app
from xiezhu.cli.clerk import case_app, forward, onsite, request, withdraw
from xiezhu.cli.credit import app as credit_app
from xiezhu.cli.database import app as database_app
from xiezhu.cli.deadletters import app as dead_letters_app
from xiezhu.cli.dispute import app as dispute_app
from xiezhu.cli.front import docs_app, outbox, records_app, serve, tokens_app
from xiezhu.cli.government import app as government_app
from xiezhu.cli.keys import app as keys_app
from xiezhu.cli.ledger import ledger_app
from xiezhu.cli.report import report as report_cmd
from xiezhu.cli.root import root_app
from xiezhu.cli.services import app as services_app
from xiezhu.cli.services import projections_app
from xiezhu.cli.sla import calendar_app, sla_app
from xiezhu.cli.users import app as users_app

app = root_app()
app.add_typer(services_app)  # demo, nats-server, nats-config, provision, agent, ledger, run, audit
app.add_typer(cases_app)  # cases, history, letter, bureaus, inbox, access-log, answer, decline
app.add_typer(projections_app, name="projections")
app.add_typer(catalogue_app, name="catalogue")
app.add_typer(keys_app, name="keys")
app.add_typer(sla_app, name="sla")
app.add_typer(calendar_app, name="calendar")
app.add_typer(credit_app, name="credit")
app.add_typer(ledger_app)  # replay, verify-bundle, checkpoint at the top level
app.add_typer(dispute_app, name="dispute")
app.add_typer(government_app, name="government")
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(tokens_app, name="tokens")
app.add_typer(alerts_app, name="alerts")
app.add_typer(users_app, name="users")
app.add_typer(database_app, name="database")
app.add_typer(records_app, name="records")
app.add_typer(docs_app, name="docs")
app.command("serve")(serve)
app.command("outbox")(outbox)
app.command("report")(report_cmd)
app.add_typer(case_app, name="case")
app.command("request")(request)
app.command("withdraw")(withdraw)
app.command("forward")(forward)
app.command("onsite")(onsite)

