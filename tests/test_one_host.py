"""examples/one-host.sh: the first real deployment, from an empty data directory, with the CLI and curl only."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import StoreLocations

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "one-host.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(600)
def test_one_host_deploys_from_nothing_and_both_requests_are_answered(tmp_path: Path,
                                                                     store_location: StoreLocations) -> None:
    """On SQLite, and with XIEZHU_DATABASE_URL (marked postgres): the same script, its records in fresh schemas."""
    if shutil.which("curl") is None:
        pytest.fail("examples/one-host.sh needs curl (Debian: apt-get install curl)")
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIEZHU_")} | {
        "XIEZHU": f"{sys.executable} -m xiezhu", "XIEZHU_DATA_DIR": str(data), "COLUMNS": "200",
        "NATS_PORT": str(_free_port()), "HTTP_PORT": str(_free_port()), "WAIT_SECONDS": "180",
    }
    prefix = f"t{store_location.tag}"
    if store_location.database_url is not None:
        store_location.schemas.append(prefix)  # every schema under the prefix is dropped afterwards
        env["XIEZHU_DATABASE_URL"] = f"{store_location.database_url}?schema={prefix}"
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-4000:]
    last = proc.stdout.strip().splitlines()[-1]  # the last output: xiezhu sla --json
    assert last.startswith("{"), proc.stdout[-2000:]
    rows = json.loads(last)
    replied = [r for r in rows.values() if r["status"] == "replied"]
    assert len(replied) == 2 and {r["requester"] for r in replied} == {"shenpi"}
    assert {r["assistor"] for r in replied} == {"gongan"}
    # gongan's verifier answered both from the records loaded from the CSV
    case = json.loads((data / "logs" / "case.json").read_text(encoding="utf-8"))
    assert case["status"] == "closed", case
    notices = json.loads((data / "logs" / "notices.json").read_text(encoding="utf-8"))
    assert [n["type"] for n in notices].count("assistance.replied") == 2
    if store_location.database_url is not None:  # the stores, the catalogue, the ledger and the views are schemas
        from aggregates.database import schemas_with_prefix

        schemas = set(schemas_with_prefix(store_location.database_url, prefix))
        assert {f"{prefix}_shenpi", f"{prefix}_gongan", f"{prefix}__ledger", f"{prefix}__catalogue",
                f"{prefix}__sla"} <= schemas, schemas
        assert not [p for p in data.rglob("*.db") if p.name in ("events.db", "ledger.db", "catalogue.db", "sla.db")]
    # nothing it started is left running
    for log in ("nats-server", "ledger", "agent-shenpi", "agent-gongan", "serve"):
        assert (data / "logs" / f"{log}.log").exists()
    for port in (env["NATS_PORT"], env["HTTP_PORT"]):
        with socket.socket() as s, pytest.raises(OSError):
            s.connect(("127.0.0.1", int(port)))
