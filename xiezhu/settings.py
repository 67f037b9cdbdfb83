"""Settings: one frozen object, read once at the composition root and passed down."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import XiezhuError

ENV_DATA_DIR = "XIEZHU_DATA_DIR"
ENV_NATS_URL = "XIEZHU_NATS_URL"
ENV_REMIND_BEFORE_HOURS = "XIEZHU_REMIND_BEFORE_HOURS"
ENV_DATABASE_URL = "XIEZHU_DATABASE_URL"


class SettingsError(XiezhuError):
    """A setting has a value xiezhu cannot use."""

    code = "settings"


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """``$XIEZHU_DATA_DIR``, else ``$XDG_DATA_HOME/xiezhu``, else ``~/.local/share/xiezhu``."""
    if environ.get(ENV_DATA_DIR):
        return Path(environ[ENV_DATA_DIR]).expanduser()
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "xiezhu"


@dataclass(frozen=True)
class Settings:
    """Where the data lives and which NATS to use (``None``: start the embedded one)."""

    data_dir: Path
    nats_url: str | None = None
    #: The SLA monitor's reminder goes out this many hours before a reply deadline ends
    #: (24: at the start of the last working day; 0: no reminders).
    remind_before_hours: float = 24.0
    #: ``postgresql://…``: the bureau stores live there, each in its own schema (``None``: SQLite files).
    database_url: str | None = None

    @classmethod
    def resolve(cls, data_dir: Path | None, nats_url: str | None,
                environ: Mapping[str, str] | None = None, *, database_url: str | None = None) -> Settings:
        """Command-line values win over the environment, which wins over defaults."""
        env = os.environ if environ is None else environ
        try:
            remind = float(env.get(ENV_REMIND_BEFORE_HOURS, "24"))
        except ValueError as e:
            raise SettingsError(f"{ENV_REMIND_BEFORE_HOURS} must be a number of hours, "
                                f"not {env.get(ENV_REMIND_BEFORE_HOURS)!r}",
                                zh=f"{ENV_REMIND_BEFORE_HOURS} 须为小时数，"
                                   f"而不是 {env.get(ENV_REMIND_BEFORE_HOURS)!r}") from e
        if not 0 <= remind <= 24 * 30:
            raise SettingsError(f"{ENV_REMIND_BEFORE_HOURS} must be between 0 and 720 hours",
                                zh=f"{ENV_REMIND_BEFORE_HOURS} 须在 0 到 720 小时之间")
        database_url = database_url or env.get(ENV_DATABASE_URL) or None
        if database_url and not database_url.startswith(("postgresql://", "postgres://")):
            raise SettingsError(f"{ENV_DATABASE_URL} must be a postgresql:// URL, not {database_url!r}",
                                zh=f"{ENV_DATABASE_URL} 须为 postgresql:// 网址，而不是 {database_url!r}")
        return cls(
            data_dir=(data_dir or default_data_dir(env)).expanduser().absolute(),
            nats_url=nats_url or env.get(ENV_NATS_URL) or None,
            remind_before_hours=remind,
            database_url=database_url,
        )

    # -- the one data directory's layout -------------------------------------------

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    def bureau_dir(self, code: str) -> Path:
        return self.data_dir / "bureaus" / code

    def store_path(self, code: str) -> Path:
        """The bureau's own eventsourcing store."""
        return self.bureau_dir(code) / "events.db"

    def store_location(self, code: str) -> Path | str:
        """Where the bureau's store lives: its file, or its own schema in the PostgreSQL database."""
        if self.database_url:
            from aggregates.store import bureau_location

            return bureau_location(self.database_url, code)
        return self.store_path(code)

    def store_exists(self, code: str) -> bool:
        """Whether bureau ``code``'s store was made: its file, or its table in its PostgreSQL schema."""
        from aggregates.database import exists

        return exists(self.store_location(code), "bureaustore_events")

    def relay_path(self, code: str) -> Path:
        return self.bureau_dir(code) / "relay.db"

    @property
    def signer_state_path(self) -> Path:
        """The last head ``xiezhu checkpoint-signer`` signed (decision 49)."""
        return self.data_dir / "signer" / "state.json"

    def witness_path(self, code: str) -> Path:
        """The heads of 区司法局's ledger that the bureau's agent saw and countersigned (decision 49)."""
        return self.bureau_dir(code) / "witness.db"

    def bureau_data_path(self, code: str) -> Path:
        """The bureau's own records its verifiers read (户籍, 营业执照 …)."""
        return self.bureau_dir(code) / "data.db"

    def feed_path(self, code: str) -> Path:
        """What arrived for the bureau, for its own systems: the feed, its webhook and deliveries."""
        return self.bureau_dir(code) / "feed.db"

    @property
    def tokens_path(self) -> Path:
        """The API tokens of ``xiezhu serve``, hashed."""
        return self.data_dir / "api" / "tokens.db"

    @property
    def catalogue_path(self) -> Path:
        """区司法局's catalogue store (附件8 and 附件9, every version)."""
        return self.bureau_dir("sifa") / "catalogue.db"

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger" / "ledger.db"

    def _record(self, name: str, path: Path) -> Path | str:
        """A record of 区司法局's machine: its SQLite file, or its own PostgreSQL schema, ``xiezhu__<name>``
        (two underscores: no bureau's schema, ``xiezhu_<code>``, can take that name; decision 49)."""
        if self.database_url:
            from aggregates.database import schema_location

            return schema_location(self.database_url, f"_{name}")
        return path

    @property
    def ledger_location(self) -> Path | str:
        """The ledger: ``ledger/ledger.db``, or the schema ``xiezhu__ledger``."""
        return self._record("ledger", self.ledger_path)

    def ledger_exists(self) -> bool:
        """Whether the ledger was made (its file, or its table in its schema)."""
        from aggregates.database import exists

        return exists(self.ledger_location, "entries")

    def view_exists(self, location: Path | str) -> bool:
        """Whether a read model was made there (its file, or its tables in its schema)."""
        from aggregates.database import exists

        return exists(location, "_positions")

    @property
    def catalogue_location(self) -> Path | str:
        """区司法局's catalogue store: ``bureaus/sifa/catalogue.db``, or the schema ``xiezhu__catalogue``."""
        return self._record("catalogue", self.catalogue_path)

    def catalogue_exists(self) -> bool:
        from aggregates.database import exists

        return exists(self.catalogue_location, "catalogueregistry_events")

    @property
    def sla_location(self) -> Path | str:
        return self._record("sla", self.sla_path)

    @property
    def commitments_location(self) -> Path | str:
        return self._record("commitments", self.commitments_path)

    @property
    def credit_location(self) -> Path | str:
        return self._record("credit", self.credit_path)

    @property
    def sla_path(self) -> Path:
        return self.data_dir / "projections" / "sla.db"

    @property
    def commitments_path(self) -> Path:
        return self.data_dir / "projections" / "commitments.db"

    @property
    def calendar_dir(self) -> Path:
        """State Council year schedules loaded by ``xiezhu calendar load``, one ``<year>.toml`` each."""
        return self.data_dir / "calendar"

    @property
    def credit_path(self) -> Path:
        """The credit view and its 信用中国 outbox."""
        return self.data_dir / "projections" / "credit.db"

    @property
    def credit_china_dir(self) -> Path:
        """Where the directory adapter delivers 信用中国 records (until a real endpoint is configured)."""
        return self.data_dir / "credit-china"

    @property
    def nats_dir(self) -> Path:
        return self.data_dir / "nats"

    @property
    def nats_keys_dir(self) -> Path:
        """The NATS users' seeds (``<name>.nk``, mode 0600; ``xiezhu nats-config`` or the embedded server)."""
        return self.data_dir / "nats-keys"

    @property
    def nats_auth_config(self) -> Path:
        """The embedded server's generated configuration (JetStream and the NKey users' permissions)."""
        return self.nats_dir / "auth.conf"

    @property
    def demo_marker(self) -> Path:
        return self.data_dir / ".xiezhu-demo"
