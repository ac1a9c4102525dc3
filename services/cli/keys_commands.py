"""`mlp keys`: make API keys and the entries of an API keys file (`MLP_API_KEYS_FILE`)."""

from __future__ import annotations

import secrets
from pathlib import Path

import typer

keys_app = typer.Typer(help="API keys: create them and the entries of MLP_API_KEYS_FILE.")


def _scopes(scope: list[str]) -> list[str]:
    from mlplatform.common.access import Scope

    known = [item.value for item in Scope]
    for name in scope:
        if name not in known:
            typer.echo(f"mlp keys: unknown scope {name!r} (expected {', '.join(known)})", err=True)
            raise typer.Exit(2)
    return sorted(set(scope))


@keys_app.command("hash")
def hash_key(
    key: str = typer.Option(..., "--key", prompt=True, hide_input=True, help="The key to hash."),
) -> None:
    """Print the SHA-256 digest of a key, as the keys file's `sha256` field holds it."""
    from mlplatform.common.api_keys import key_digest

    typer.echo(key_digest(key).hex())


@keys_app.command("add")
def add_key(
    name: str = typer.Argument(..., help="Who or what uses the key (shows in logs)."),
    scope: list[str] = typer.Option(
        ..., "--scope", help="predict, outcomes, monitor or admin; repeat for several."
    ),
    keys_file: Path = typer.Option(
        ..., "--file", envvar="MLP_API_KEYS_FILE", help="The keys file to append to."
    ),
) -> None:
    """Create a random key, add its digest and scopes to the keys file, print the key once.

    The file keeps only the digest: the printed key cannot be recovered later. Services that
    read the file pick the new key up within a second or two, without a restart.
    """
    import yaml

    from mlplatform.common.api_keys import key_digest
    from mlplatform.common.keys_file import KeysFileError, parse_keys

    scopes = _scopes(scope)
    text = keys_file.read_text(encoding="utf-8") if keys_file.exists() else ""
    try:
        entries = parse_keys(text, str(keys_file))
    except KeysFileError as error:
        typer.echo(f"mlp keys add: {error}", err=True)
        raise typer.Exit(2) from None
    if any(entry.name == name for entry in entries):
        typer.echo(f"mlp keys add: {keys_file} already has a key named {name!r}", err=True)
        raise typer.Exit(2)
    key = secrets.token_urlsafe(32)
    document = yaml.safe_load(text) or {"keys": []}
    document.setdefault("keys", []).append(
        {"name": name, "sha256": key_digest(key).hex(), "scopes": scopes}
    )
    # Write a sibling then rename: readers never see a half-written file.
    staging = keys_file.with_name(f".{keys_file.name}.tmp")
    staging.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    staging.chmod(0o600)
    staging.replace(keys_file)
    typer.echo(key)


def register(app: typer.Typer) -> None:
    """Adds `mlp keys hash` and `mlp keys add` to the `mlp` app."""
    app.add_typer(keys_app, name="keys")
