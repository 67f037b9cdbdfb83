"""The eventsourcing side of xiezhu: each bureau's store (:class:`BureauStore`) and 区司法局's catalogue store.

- :mod:`aggregates.store.base`: the application base, the signed-case aggregate, intake
  markers, number series, the retry on conflict and the store errors;
- :mod:`aggregates.store.assistance`, :mod:`~aggregates.store.commitments`,
  :mod:`~aggregates.store.disputes`, :mod:`~aggregates.store.notices`: one module per case type;
- :mod:`aggregates.store.bureau`: the :class:`BureauStore` facade;
- :mod:`aggregates.store.catalogue`: the catalogue storage (the rules stay in :mod:`aggregates.catalogue`).
"""
from aggregates.database import location_schema
from aggregates.store.assistance import AssistanceCase, AssistanceCases
from aggregates.store.base import (
    CONFLICT_RETRIES,
    SHANGHAI,
    CatalogueCheck,
    ConcurrentChange,
    DuplicateEvent,
    IntakeMarker,
    NumberSeries,
    SignedCase,
    SignFn,
    StoreError,
    UnknownCase,
    bureau_location,
    retry_on_conflict,
    store_env,
)
from aggregates.store.bureau import BureauStore
from aggregates.store.catalogue import CatalogueRegistry
from aggregates.store.commitments import CommitmentCase, CommitmentCases
from aggregates.store.disputes import DisputeCase, DisputeCases
from aggregates.store.notices import Notice, NoticeIn, Notices

__all__ = [
    "CONFLICT_RETRIES",
    "SHANGHAI",
    "AssistanceCase",
    "AssistanceCases",
    "BureauStore",
    "CatalogueCheck",
    "CatalogueRegistry",
    "CommitmentCase",
    "CommitmentCases",
    "ConcurrentChange",
    "DisputeCase",
    "DisputeCases",
    "DuplicateEvent",
    "IntakeMarker",
    "Notice",
    "NoticeIn",
    "Notices",
    "NumberSeries",
    "SignFn",
    "SignedCase",
    "StoreError",
    "UnknownCase",
    "bureau_location",
    "location_schema",
    "retry_on_conflict",
    "store_env",
]
