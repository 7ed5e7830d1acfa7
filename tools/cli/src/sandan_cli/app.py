"""`sandan`: the command line of county IT operators and support staff.

    sandan stack up|down|status          the local Kafka, PostgreSQL and Keycloak; the services' health
    sandan topics list|describe|lag      the topic registry beside the broker; consumer groups' lag
    sandan deadletters list|show|redrive the consuming services' dead letters (operators)
    sandan set-aside list|redrive        events the services' relays could not publish (operators)
    sandan scoring rebuild|what-if|...   scoring's admin calls, with a progress bar
    sandan demand ID / sandan order ID   support lookups, showing what the caller's role may see
    sandan login|logout|whoami           the caller's token

Every call to a service carries the caller's token (see sandan_cli.auth); the services decide what it may do.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from sandan_cli import auth, deadletters, lookup, scoring, setaside, stack, topics
from sandan_cli.common import DEFAULT_ADDRESSES, Cli
from sandan_eventbus.auth.keycloak import LOCAL_ISSUER

app = typer.Typer(name="sandan", no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  pretty_exceptions_enable=False)


def _address(service: str) -> Any:
    return typer.Option(f"--{service}", envvar=f"SANDAN_{service.upper()}_ADDRESS",
                        help=f"{service}'s gRPC address", show_default=True)


@app.callback()
def root(ctx: typer.Context,
         token: Annotated[str, typer.Option(envvar="SANDAN_TOKEN", show_default=False,
                                            help="the caller's access token (else client credentials from "
                                                 "SANDAN_OIDC_CLIENT_ID/_SECRET, else `sandan login`'s)")] = "",
         issuer: Annotated[str, typer.Option(envvar="SANDAN_OIDC_ISSUER", help="the OIDC issuer")] = LOCAL_ISSUER,
         plaintext: Annotated[bool, typer.Option("--plaintext", help="call the services without TLS (a local "
                                                  "run; as SANDAN_GRPC_PLAINTEXT=allow). Else TLS with "
                                                  "SANDAN_GRPC_TLS_CA_FILE")] = False,
         timeout: Annotated[float, typer.Option(help="seconds per call")] = 60.0,
         intake: Annotated[str, _address("intake")] = DEFAULT_ADDRESSES["intake"],
         dispatch: Annotated[str, _address("dispatch")] = DEFAULT_ADDRESSES["dispatch"],
         scoring_: Annotated[str, _address("scoring")] = DEFAULT_ADDRESSES["scoring"],
         notify: Annotated[str, _address("notify")] = DEFAULT_ADDRESSES["notify"]) -> None:
    """sandan: the command line of county IT operators and support staff."""
    ctx.obj = Cli(token=token.strip(), issuer=issuer.rstrip("/"), plaintext=plaintext, timeout=timeout,
                  addresses={"intake": intake, "dispatch": dispatch, "scoring": scoring_, "notify": notify})


app.add_typer(stack.app, name="stack")
app.add_typer(topics.app, name="topics")
app.add_typer(deadletters.app, name="deadletters")
app.add_typer(setaside.app, name="set-aside")
app.add_typer(scoring.app, name="scoring")
app.command()(lookup.demand)
app.command()(lookup.order)
app.command()(auth.login)
app.command()(auth.logout)
app.command()(auth.whoami)


def main() -> None:
    app(prog_name="sandan")


if __name__ == "__main__":
    main()
