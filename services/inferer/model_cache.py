"""Models kept loaded between messages, following their alias to new versions.

A batch names its model as `NAME@ALIAS` or `NAME/VERSION`. Loading takes seconds, so a
loaded version is kept; an alias is looked up again at most every `recheck_seconds`, and
when it has moved, the new version is loaded and the old one dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlplatform.common.compiled_serving import CompileOptions
from mlplatform.common.model_loading import (
    LoadedModel,
    ModelReference,
    load_model,
    registry_client,
    resolve_version,
)
from mlplatform.common.model_tags import ModelTagRequirement


@dataclass
class _Entry:
    model: LoadedModel
    checked_at: float


class ModelCache:
    """Loaded models by reference; thread-safe."""

    def __init__(
        self,
        tracking_uri: str | None,
        recheck_seconds: float = 30.0,
        loader: Callable[..., LoadedModel] = load_model,
        required_tag: ModelTagRequirement | None = None,
        compile_options: CompileOptions | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        #: Versions without this registry tag are refused (`--require-model-tag`).
        self.required_tag = required_tag
        #: How loaded versions are compiled (`--compile`); None loads them uncompiled.
        self.compile_options = compile_options
        self.recheck_seconds = recheck_seconds
        self._loader = loader
        self._client: Any = None
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, reference: ModelReference) -> LoadedModel:
        """The model `reference` points at now, loading it if needed."""
        key = str(reference)
        with self._lock:
            entry = self._entries.get(key)
            now = time.monotonic()
            if entry is not None and (
                reference.version or now - entry.checked_at < self.recheck_seconds
            ):
                return entry.model
            client = self._registry()
            version = resolve_version(client, reference)
            if entry is not None and entry.model.version == version:
                entry.checked_at = now
                return entry.model
            model = self._loader(
                reference,
                self.tracking_uri,
                version=version,
                client=client,
                required_tag=self.required_tag,
                compile_options=self.compile_options,
            )
            self._entries[key] = _Entry(model, now)
            return model

    def _registry(self) -> Any:
        if self._client is None:
            self._client = registry_client(self.tracking_uri)
        return self._client
