"""``jobs dynamodb ensure-table``: the guard table of ``GUARD_STORE=dynamodb``."""

from __future__ import annotations

import dataclasses

import click

from bridge.cli.common import errors_to_exit_codes, json_text, load_settings

__all__ = ["dynamodb"]


@click.group(
    help="DynamoDB guard table (credentials from the AWS chain; AWS_ENDPOINT_URL_DYNAMODB for an emulator)."
)
def dynamodb() -> None:
    """``jobs dynamodb ...``."""


@dynamodb.command(
    name="ensure-table",
    help="Create the guard table (on-demand capacity, TTL enabled) or check an existing one (idempotent).",
)
@click.argument("name", required=False)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the table's name, ARN, billing mode and TTL attribute."
)
@click.pass_context
@errors_to_exit_codes
def dynamodb_ensure_table(ctx: click.Context, name: str | None, as_json: bool) -> None:
    from bridge.dynamodb.table import DynamoTable
    from bridge.errors import ConfigError

    settings = load_settings(ctx)
    if name:
        settings = dataclasses.replace(settings, dynamodb_table=name)
    if not settings.dynamodb_table:
        raise ConfigError("no table: pass NAME or set DYNAMODB_TABLE.")
    table = DynamoTable.of(settings)
    try:
        info = table.ensure()
    finally:
        table.close()
    if as_json:
        click.echo(json_text(info))
    else:
        state = "created" if info["created"] else "exists"
        click.echo(f"{info['table']}: {state}, {info['billing']}, TTL on {info['ttl_attribute']!r}")
