"""The one place that builds xiezhu's object graph from :class:`Settings` (decision 28).

:class:`System` holds, for one data directory: the keys and the key ring, 区司法局's catalogue,
each bureau's store (opened on first use), the ledger and the read models, and the service
layer over them (a :class:`Desk` per bureau, :class:`Justice`).  :class:`xiezhu.node.Node`,
the command line and the demo all build it here; nothing else wires stores to keys, and
nothing below ``xiezhu`` reads the environment.

Where a service needs a read model, the service declares a Protocol and this module wires the
view in: the credit gate of :meth:`Desk.open_case` reads the credit view through
:attr:`System.credit` (the running node's view, or here a view caught up with the ledger).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from agencies.desk import CreditStanding, Desk
from agencies.disclosure import AccessLog
from agencies.government import Government
from agencies.justice import Justice, SignCheckpoint
from agencies.trust.keys import KeyStore, KeyStoreError
from aggregates.calendar_store import CalendarStore
from aggregates.clock import Clock
from aggregates.registry import JUSTICE, Registry, zh_name
from aggregates.store import BureauStore
from aggregates.store.catalogue import CatalogueRegistry
from broker.ledger.store import Ledger
from broker.signing import KeyRing, Opens
from projections.commitments import CommitmentView
from projections.credit import CreditView, open_view
from projections.sla import SlaView
from schemas.commitment import Standing
from schemas.envelope import Envelope, Signed
from schemas.errors import XiezhuError
from schemas.sla import DISTRICT_GOVERNMENT
from xiezhu.settings import Settings


class BootstrapError(XiezhuError):
    """The data directory lacks what was asked for (a bureau's store, the ledger)."""

    code = "bootstrap"


def open_catalogue(settings: Settings, clock: Clock) -> CatalogueRegistry:
    """区司法局's catalogues (附件8, 附件9), which every request is checked against."""
    settings.catalogue_path.parent.mkdir(parents=True, exist_ok=True)
    return CatalogueRegistry(settings.catalogue_location, clock)


def views_exist(settings: Settings) -> bool:
    """Whether a read model encrypted with 区司法局's store key exists (then the key must too)."""
    return settings.view_exists(settings.commitments_location) or settings.view_exists(settings.credit_location)


def existing_catalogue(settings: Settings) -> CatalogueRegistry | None:
    """The catalogue of a data directory that has one (views check requests against it), else None."""
    if not settings.catalogue_exists():
        return None
    from aggregates.clock import SystemClock  # reading only: the clock stamps nothing

    return CatalogueRegistry(settings.catalogue_location, SystemClock())


def open_store(settings: Settings, keys: KeyStore, code: str, clock: Clock,
               catalogue: CatalogueRegistry | None = None, ring: KeyRing | None = None) -> BureauStore:
    """A bureau's own store, signing with that bureau's key, checking requests against the catalogue.

    It signs with the bureau's newest key that ``ring`` (default: the trust list on disk)
    holds valid, so a rotation takes effect without a restart.  The store is encrypted at
    rest with the bureau's store key (``keys/<code>.store-key``, made on first use).
    """
    settings.bureau_dir(code).mkdir(parents=True, exist_ok=True)
    return BureauStore(code, settings.store_location(code), keys.bureau_signer(code, ring).sign, clock,
                       catalogue or open_catalogue(settings, clock),
                       # A store that exists was written with a key: never make a new one for it.
                       store_key=keys.store_key(code, create=not settings.store_exists(code)))


class _CreditGate:
    """The credit gate as desks see it: whatever credit source the system has now."""

    def __init__(self, system: System) -> None:
        self._system = system

    def standing(self, applicant: str, at: datetime | None = None) -> Standing:
        source = self._system.credit
        if source is None:
            source = self._system.fresh_credit()
        return source.standing(applicant, at)


class _FreshCredit:
    """The credit view of the data directory, caught up with the ledger before each look-up."""

    def __init__(self, system: System) -> None:
        self._system = system

    def standing(self, applicant: str, at: datetime | None = None) -> Standing:
        ledger = self._system.ledger()
        try:
            view = self._system.credit_view()
            view.follow(ledger)
            return view.standing(applicant, at)
        finally:
            ledger.close()


class System:
    """The object graph of one data directory: keys, catalogue, stores, ledger, views and services."""

    def __init__(self, settings: Settings, registry: Registry, clock: Clock, *, keys: KeyStore | None = None,
                 ring: KeyRing | None = None) -> None:
        """``ring``: the key ring every store signs against (default: the trust list on disk, read once)."""
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self.keys = keys or KeyStore(settings.keys_dir)
        self._ring = ring
        self._catalogue: CatalogueRegistry | None = None
        self.stores: dict[str, BureauStore] = {}
        self._desks: dict[str, Desk] = {}
        self._justice: Justice | None = None
        self._government: Government | None = None
        self.access_log = AccessLog(settings.data_dir)
        #: The credit gate's source (四(二)): a running node sets its live credit view here; left
        #: ``None``, the gate reads the data directory's credit view caught up with the ledger.
        self.credit: CreditStanding | None = None

    @property
    def ring(self) -> KeyRing:
        """The key ring of the trust list (one for the whole process; a trust follower updates it)."""
        if self._ring is None:
            self._ring = self.keys.ring()
        return self._ring

    @property
    def catalogue(self) -> CatalogueRegistry:
        """区司法局's catalogue store (附件8, 附件9)."""
        if self._catalogue is None:
            self._catalogue = open_catalogue(self.settings, self.clock)
        return self._catalogue

    # -- bureaus ----------------------------------------------------------------------------

    def store(self, code: str) -> BureauStore:
        """The store of ``code`` (opened, or made, on first use)."""
        if code not in self.stores:
            self.stores[code] = open_store(self.settings, self.keys, code, self.clock, self.catalogue, self._ring)
        return self.stores[code]

    def existing(self, code: str) -> None:
        """Refuse a bureau that has no store in this data directory yet (a command that only reads or answers)."""
        self.registry[code]
        if code not in self.stores and not self.settings.store_exists(code):
            raise BootstrapError(f"{code} has no store in {self.settings.data_dir}",
                                 zh=f"{self.settings.data_dir} 中没有{zh_name(code)}的存储")

    def desk(self, code: str, *, existing: bool = False) -> Desk:
        """The service layer of bureau ``code`` (with ``existing``: only if its store is there already)."""
        if existing:
            self.existing(code)
        if code not in self._desks:
            self._desks[code] = Desk(code, lambda: self.store(code), self.catalogue, verify=self._verifier(code),
                                     credit=_CreditGate(self), access_log=self.access_log)
        return self._desks[code]

    def _verifier(self, code: str) -> Callable[[Signed], Envelope]:
        """Checks a signed event against the trust list, and opens it with ``code``'s box keys if held here."""
        def verify(signed: Signed) -> Envelope:
            try:
                opener: Opens | None = self.keys.ledger_opener() if code == JUSTICE else self.keys.opener(code)
            except KeyStoreError:
                opener = None  # a machine without the bureau's box key checks the signature only
            return self.ring.verify(signed, opener=opener)
        return verify

    def justice(self) -> Justice:
        """区司法局's services, over its own store."""
        if self._justice is None:
            self._justice = Justice(self.desk(JUSTICE), sign_checkpoint=self._checkpoint_signer,
                                    access_log=self.access_log)
        return self._justice

    def government(self) -> Government:
        """区政府's services, over 区政府办公室's store (the office through which 区政府 acts)."""
        if self._government is None:
            self._government = Government(self.desk(DISTRICT_GOVERNMENT))
        return self._government

    def _checkpoint_signer(self) -> SignCheckpoint:
        signer = self.keys.signer(JUSTICE)
        return lambda msg: (signer.kid, signer.sign_bytes(msg))

    # -- the record and the read models --------------------------------------------------------

    def has_ledger(self) -> bool:
        return self.settings.ledger_exists()

    def ledger(self) -> Ledger:
        """The ledger, with 区司法局's box keys where this machine holds them (the caller closes it).

        Without them the ledger's signatures and chain can still be audited; what the cases say
        cannot be read (decision 23).
        """
        return Ledger(self.settings.ledger_location, opener=self.keys.ledger_opener())

    def view_key(self) -> bytes:
        """The key the read models encrypt applicants' data with: 区司法局's store key (decision 26)."""
        return self.keys.store_key(JUSTICE, create=not views_exist(self.settings))

    def sla_view(self) -> SlaView:
        return SlaView(self.settings.sla_location, CalendarStore(self.settings.calendar_dir), catalogue=self.catalogue)

    def commitment_view(self) -> CommitmentView:
        return CommitmentView(self.settings.commitments_location, view_key=self.view_key())

    def credit_view(self) -> CreditView:
        return open_view(self.settings.credit_location, view_key=self.view_key())

    def fresh_credit(self) -> CreditStanding:
        """The credit view caught up with the ledger at each look-up (a command run without a node)."""
        if not self.has_ledger():
            raise BootstrapError(f"no ledger in {self.settings.data_dir}: the credit gate (四(二)) has no "
                                 "credit view to read",
                                 zh=f"{self.settings.data_dir} 中没有账本：信用核查（四(二)）没有可读取的信用视图")
        return _FreshCredit(self)


def system_for(settings: Settings, clock: Clock, registry: Registry | None = None) -> System:
    """The object graph of a command run on ``settings``'s data directory."""
    return System(settings, registry or Registry.load(), clock)
