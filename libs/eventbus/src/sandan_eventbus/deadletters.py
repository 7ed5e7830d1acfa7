"""`python -m sandan_eventbus.deadletters`: list, show and re-drive one service's dead letters.

    python -m sandan_eventbus.deadletters --service-address 127.0.0.1:50052 list [--topic intake.demands.v1]
    python -m sandan_eventbus.deadletters --service-address 127.0.0.1:50052 show intake.demands.v1.dlq:0:17
    python -m sandan_eventbus.deadletters --service-address 127.0.0.1:50052 redrive intake.demands.v1.dlq:0:17 \\
        --operator "county IT: Li Wei" --reason "menu item restored"

A dead letter is named `<dead-letter topic>:<partition>:<offset>`, as `list` prints it. The service applies a
re-driven one at most once, however often it is asked, and records who asked, when, and the outcome.
`redrive` exits 1 when any of them was not applied (it failed again, or was not found).

Over TLS as every caller of a service (`SANDAN_GRPC_TLS_CA_FILE`, and a client certificate when
`SANDAN_GRPC_TLS_CERT_FILE`/`_KEY_FILE` are set); the certificate is checked for the address's host, or for
`SANDAN_GRPC_TLS_SERVER_NAME` (`--server-name`) when the address is not a name it was issued for (a port-forward
to 127.0.0.1). Plaintext, and so the token in the clear, only with `SANDAN_GRPC_PLAINTEXT=allow` (a local run):
without either it refuses before calling.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import grpc
from google.protobuf.json_format import MessageToDict

from sandan_contracts.rpc import ops_pb2 as pb
from sandan_contracts.rpc import ops_pb2_grpc
from sandan_eventbus import channels
from sandan_eventbus.config import ConfigError
from sandan_eventbus.security import GrpcTlsSettings, load

APPLIED = ("applied", "already_applied")


def parse_ref(text: str) -> pb.DeadLetterRef:
    topic, sep1, rest = text.rpartition(":")
    topic, sep2, partition = topic.rpartition(":")
    if not (sep1 and sep2 and topic and partition.isdigit() and rest.isdigit()):
        raise click.BadParameter(f"{text!r}: expected <dead-letter topic>:<partition>:<offset>")
    return pb.DeadLetterRef(topic=topic, partition=int(partition), offset=int(rest))


def ref_text(ref: pb.DeadLetterRef) -> str:
    return f"{ref.topic}:{ref.partition}:{ref.offset}"


def open_channel(address: str, server_name: str = "") -> grpc.Channel:
    """A channel to the service with the shared retry policy: over TLS when a CA is configured, in plaintext only
    where allowed (ConfigError otherwise, before anything is sent)."""
    credentials = load(GrpcTlsSettings).channel_credentials()
    options = channels.options()  # the reads retried on UNAVAILABLE too; Redrive on refusals only
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(address, credentials, options=options)


class Client:
    """Connects at the first call (so `--help` needs no settings)."""

    def __init__(self, address: str, token: str | None, timeout: float, server_name: str = "") -> None:
        self.address, self.server_name = address, server_name
        self.stub: ops_pb2_grpc.DeadLettersStub | None = None
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout

    def call(self, method: str, request: Any) -> Any:
        if self.stub is None:
            try:
                self.stub = ops_pb2_grpc.DeadLettersStub(open_channel(self.address, self.server_name))
            except ConfigError as error:
                raise click.ClickException(str(error)) from None
        try:
            return getattr(self.stub, method)(request, metadata=self.metadata, timeout=self.timeout)
        except grpc.RpcError as error:
            code = error.code().name if error.code() else "UNKNOWN"  # type: ignore[attr-defined]
            raise click.ClickException(f"{method}: {code}: {error.details()}") from None  # type: ignore[attr-defined]


@click.group()
@click.option("--service-address", envvar="SANDAN_SERVICE_ADDRESS", required=True,
              help="host:port of the consuming service (intake, dispatch, notify)")
@click.option("--token", envvar="SANDAN_TOKEN", default=None, help="bearer token, when the service asks for one")
@click.option("--timeout", default=60.0, show_default=True, help="seconds per call")
@click.option("--server-name", envvar="SANDAN_GRPC_TLS_SERVER_NAME", default="",
              help="the name the service's certificate is checked for, when the address is not one of its names")
@click.pass_context
def cli(ctx: click.Context, service_address: str, token: str | None, timeout: float, server_name: str) -> None:
    """A service's dead letters: what its consumer could not apply, and re-driving them."""
    ctx.obj = Client(service_address, token, timeout, server_name.strip())


@cli.command("list")
@click.option("--topic", "source_topic", default="", help="only dead letters consumed from this topic")
@click.option("--all", "include_applied", is_flag=True, help="also those a re-drive already applied")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.pass_obj
def list_(client: Client, source_topic: str, include_applied: bool, limit: int, as_json: bool) -> None:
    """Dead letters, most recent first."""
    reply = client.call("List", pb.ListDeadLettersRequest(source_topic=source_topic,
                                                          include_applied=include_applied, limit=limit))
    for letter in reply.dead_letters:
        if as_json:
            click.echo(json.dumps(MessageToDict(letter, preserving_proto_field_name=True), ensure_ascii=False))
            continue
        click.echo(f"{ref_text(letter.ref)}  {letter.status:7}  {letter.dead_lettered_at[:19]}  "
                   f"{letter.event_type or '-'}  {letter.error[:120]}")
    if not as_json:
        click.echo(f"{len(reply.dead_letters)} dead letter(s)", err=True)


@cli.command()
@click.argument("ref")
@click.pass_obj
def show(client: Client, ref: str) -> None:
    """One dead letter: headers, payload and its re-drive attempts (JSON)."""
    letter = client.call("Get", parse_ref(ref))
    body = MessageToDict(letter, preserving_proto_field_name=True)
    body["payload"] = letter.payload.decode("utf-8", errors="replace")
    click.echo(json.dumps(body, ensure_ascii=False, indent=2))


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--operator", envvar="SANDAN_OPERATOR", required=True, help="who asks (recorded with the outcome)")
@click.option("--reason", default="", help="why (recorded)")
@click.pass_obj
def redrive(client: Client, refs: tuple[str, ...], operator: str, reason: str) -> None:
    """Apply the given dead letters again, each at most once."""
    reply = client.call("Redrive", pb.RedriveRequest(dead_letters=[parse_ref(r) for r in refs], operator=operator,
                                                     reason=reason))
    for result in reply.results:
        detail = f"  {result.detail}" if result.detail else ""
        click.echo(f"{ref_text(result.dead_letter)}  {result.outcome}{detail}")
    if any(r.outcome not in APPLIED for r in reply.results):
        sys.exit(1)


def main() -> None:
    cli(prog_name="python -m sandan_eventbus.deadletters")


if __name__ == "__main__":
    main()
