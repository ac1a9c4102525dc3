"""An in-memory stand-in for the part of pymongo the MongoDB store uses.

No MongoDB server runs on the development machines and mongomock is not installed, so this
lets the contract suite drive MongoStore's own code (compare-and-swap, duplicate counting,
serving spans, document mapping) without a server. It imitates only the operators the store
sends: equality, $gte, $lt, $type "string", $set, $unset, and unique (partial) indexes. It
proves the store's logic, not the server's behaviour: a real server is still needed for that.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

from pymongo import IndexModel
from pymongo.errors import BulkWriteError, DuplicateKeyError, InvalidOperation

_MISSING = object()


def _matches_condition(value: Any, condition: Any) -> bool:
    if not isinstance(condition, Mapping) or not any(key.startswith("$") for key in condition):
        return (None if value is _MISSING else value) == condition
    for operator, operand in condition.items():
        if operator == "$gte" and not (value is not _MISSING and value >= operand):
            return False
        if operator == "$lt" and not (value is not _MISSING and value < operand):
            return False
        if operator == "$type" and not (operand == "string" and isinstance(value, str)):
            return False
    return True


def matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    return all(
        _matches_condition(document.get(field, _MISSING), condition)
        for field, condition in query.items()
    )


class FakeCursor:
    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self._documents = documents

    def sort(self, keys: list[tuple[str, int]]) -> FakeCursor:
        for field, direction in reversed(keys):  # stable sorts, least significant key first
            self._documents.sort(
                key=lambda document, field=field: (
                    document.get(field) is not None,
                    document.get(field),
                ),
                reverse=direction < 0,
            )
        return self

    def limit(self, count: int) -> FakeCursor:
        if count:
            self._documents = self._documents[:count]
        return self

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(copy.deepcopy(self._documents))


class FakeCollection:
    def __init__(self, database: FakeDatabase) -> None:
        self._database = database
        self._documents: list[dict[str, Any]] = []
        self._unique_indexes: list[dict[str, Any]] = [{"key": {"_id": 1}}]
        self._index_names = ["_id_"]
        self._ids = itertools.count(1)

    def _check_open(self) -> None:
        if self._database.client.closed:
            raise InvalidOperation("Cannot use MongoClient after close")

    def _duplicate_of(self, candidate: Mapping[str, Any], ignore: object = None) -> str | None:
        for index in self._unique_indexes:
            partial = index.get("partialFilterExpression", {})
            if not matches(candidate, partial):
                continue
            key = tuple(candidate.get(field) for field in index["key"])
            for document in self._documents:
                if document is ignore or not matches(document, partial):
                    continue
                if tuple(document.get(field) for field in index["key"]) == key:
                    return (
                        f"E11000 duplicate key error: {dict(zip(index['key'], key, strict=True))}"
                    )
        return None

    def create_indexes(self, indexes: list[IndexModel]) -> None:
        self._check_open()
        self._unique_indexes += [
            index.document for index in indexes if index.document.get("unique")
        ]
        self._index_names += [
            index.document["name"]
            for index in indexes
            if index.document["name"] not in self._index_names
        ]

    def index_information(self) -> dict[str, dict[str, Any]]:
        return {name: {} for name in self._index_names}

    def insert_one(self, document: dict[str, Any]) -> SimpleNamespace:
        self._check_open()
        stored = copy.deepcopy(document)
        stored.setdefault("_id", next(self._ids))
        if (duplicate := self._duplicate_of(stored)) is not None:
            raise DuplicateKeyError(duplicate, code=11000)
        self._documents.append(stored)
        return SimpleNamespace(inserted_id=stored["_id"])

    def insert_many(self, documents: list[dict[str, Any]], ordered: bool = True) -> SimpleNamespace:
        assert ordered is False, "the store must insert unordered to skip duplicates"
        inserted, errors = [], []
        for position, document in enumerate(documents):
            try:
                inserted.append(self.insert_one(document).inserted_id)
            except DuplicateKeyError as error:
                errors.append({"index": position, "code": 11000, "errmsg": str(error)})
        if errors:
            raise BulkWriteError(
                {"nInserted": len(inserted), "writeErrors": errors, "writeConcernErrors": []}
            )
        return SimpleNamespace(inserted_ids=inserted)

    def find_one(self, query: Mapping[str, Any]) -> dict[str, Any] | None:
        self._check_open()
        found = next((document for document in self._documents if matches(document, query)), None)
        return copy.deepcopy(found)

    def find(
        self, query: Mapping[str, Any], projection: Mapping[str, Any] | None = None
    ) -> FakeCursor:
        """Whole documents: a projection only saves the server's bandwidth."""
        self._check_open()
        return FakeCursor([document for document in self._documents if matches(document, query)])

    def count_documents(self, query: Mapping[str, Any]) -> int:
        self._check_open()
        return sum(matches(document, query) for document in self._documents)

    def replace_one(self, query: Mapping[str, Any], replacement: dict[str, Any]) -> SimpleNamespace:
        self._check_open()
        for position, document in enumerate(self._documents):
            if matches(document, query):
                stored = {**copy.deepcopy(replacement), "_id": document["_id"]}
                if (duplicate := self._duplicate_of(stored, ignore=document)) is not None:
                    raise DuplicateKeyError(duplicate, code=11000)
                self._documents[position] = stored
                return SimpleNamespace(matched_count=1)
        return SimpleNamespace(matched_count=0)

    def update_one(
        self, query: Mapping[str, Any], update: Mapping[str, Any], upsert: bool = False
    ) -> SimpleNamespace:
        self._check_open()
        for document in self._documents:
            if matches(document, query):
                document.update(copy.deepcopy(update.get("$set", {})))
                return SimpleNamespace(matched_count=1)
        if upsert:
            inserted = {**query, **update.get("$set", {}), **update.get("$setOnInsert", {})}
            self.insert_one(copy.deepcopy(inserted))
        return SimpleNamespace(matched_count=0)

    def update_many(self, query: Mapping[str, Any], update: Mapping[str, Any]) -> SimpleNamespace:
        self._check_open()
        matched = [document for document in self._documents if matches(document, query)]
        for document in matched:
            document.update(copy.deepcopy(update.get("$set", {})))
            for field in update.get("$unset", {}):
                document.pop(field, None)
        return SimpleNamespace(matched_count=len(matched))


class FakeDatabase:
    def __init__(self, client: FakeMongoClient, name: str) -> None:
        self.client = client
        self.name = name
        self._collections: dict[str, FakeCollection] = {}

    def __getitem__(self, name: str) -> FakeCollection:
        return self._collections.setdefault(name, FakeCollection(self))


class FakeMongoClient:
    """Takes MongoClient's arguments; every client shares nothing with any other."""

    def __init__(self, uri: str, **options: Any) -> None:
        self.uri = uri
        self.options = options
        self.closed = False
        self._databases: dict[str, FakeDatabase] = {}

    def __getitem__(self, name: str) -> FakeDatabase:
        return self._databases.setdefault(name, FakeDatabase(self, name))

    def get_default_database(self, default: str) -> FakeDatabase:
        return self[default]

    def drop_database(self, name: str) -> None:
        self._databases.pop(name, None)

    def close(self) -> None:
        self.closed = True
