"""The MongoDB store's schema version: one document marks which layout a database holds.

A new database gets this release's version on first open; a database marked newer (written by
a later release) is refused with SchemaVersionError rather than misread. A new optional field
needs no new version: documents without it read as before, older releases ignore it, and its
index is created at open like every other (as for predictions' `prediction_key`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from mlplatform.common.extras import missing_extra

try:
    from pymongo.database import Database
    from pymongo.errors import DuplicateKeyError
except ImportError as error:
    raise missing_extra("mongo", error) from error

from mlplatform.common.store.base import SchemaVersionError

#: The layout of the documents this release writes.
SCHEMA_VERSION = 1
#: One document, `{_id: SCHEMA_DOCUMENT_ID, version: N}`, in this collection.
META_COLLECTION = "store_meta"
SCHEMA_DOCUMENT_ID = "schema"


def claim_schema_version(database: Database[dict[str, Any]]) -> int:
    """Marks a new database with this release's version; returns the version it carries."""
    meta = database[META_COLLECTION]
    # Two processes opening a new database at once: one upsert loses with a duplicate key, and
    # the other one's mark stands.
    with contextlib.suppress(DuplicateKeyError):
        meta.update_one(
            {"_id": SCHEMA_DOCUMENT_ID},
            {"$setOnInsert": {"version": SCHEMA_VERSION}},
            upsert=True,
        )
    document = meta.find_one({"_id": SCHEMA_DOCUMENT_ID}) or {}
    return int(document.get("version", SCHEMA_VERSION))


def check_schema_version(database: Database[dict[str, Any]]) -> None:
    """Claims a new database; refuses one a newer release wrote."""
    found = claim_schema_version(database)
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(found, SCHEMA_VERSION)
