"""`mlp keys add` and `mlp keys hash`, as a user runs them (the installed console script)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from mlplatform.common.access import Scope
from mlplatform.common.api_keys import ApiKeys, Verdict, key_digest


def run_mlp(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    return subprocess.run(
        [mlp, *arguments], capture_output=True, text=True, timeout=60, input=stdin
    )


def test_keys_add_appends_a_digest_and_prints_the_key_once(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.yaml"
    first = run_mlp("keys", "add", "scorer", "--scope", "predict", "--file", str(keys_file))
    assert first.returncode == 0, first.stderr
    second = run_mlp(
        "keys", "add", "ops", "--scope", "monitor", "--scope", "outcomes", "--file", str(keys_file)
    )
    assert second.returncode == 0, second.stderr
    scorer_key, ops_key = first.stdout.strip(), second.stdout.strip()
    text = keys_file.read_text()
    assert scorer_key not in text and key_digest(scorer_key).hex() in text
    keys = ApiKeys(keys_file=keys_file)
    assert keys.check(scorer_key, Scope.PREDICT) is Verdict.ALLOWED
    assert keys.check(scorer_key, Scope.MONITOR) is Verdict.FORBIDDEN
    assert keys.check(ops_key, Scope.OUTCOMES) is Verdict.ALLOWED
    assert keys_file.stat().st_mode & 0o077 == 0  # digests only, still nobody else's business


def test_keys_add_refuses_a_duplicate_name_and_an_unknown_scope(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.yaml"
    assert run_mlp("keys", "add", "a", "--scope", "admin", "--file", str(keys_file)).returncode == 0
    duplicate = run_mlp("keys", "add", "a", "--scope", "admin", "--file", str(keys_file))
    assert duplicate.returncode == 2
    assert "already has a key named 'a'" in duplicate.stderr
    unknown = run_mlp("keys", "add", "b", "--scope", "everything", "--file", str(keys_file))
    assert unknown.returncode == 2
    assert "unknown scope 'everything'" in unknown.stderr


def test_keys_hash_prints_the_digest() -> None:
    done = run_mlp("keys", "hash", "--key", "my-key")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == key_digest("my-key").hex()
