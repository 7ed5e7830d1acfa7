"""`python -m sandan_intake`: the intake service (gRPC API, outbox relay, dispatch.orders.v1 inbox)."""

from __future__ import annotations

import grpc

from sandan_contracts.events.dispatch import ORDERS
from sandan_eventbus.config import load_or_exit
from sandan_eventbus.inbox import Inbox
from sandan_eventbus.kafka import make_broker
from sandan_eventbus.logs import setup
from sandan_eventbus.relay import Relay
from sandan_eventbus.runtime import ServiceRuntime, run_until_signalled
from sandan_intake import api
from sandan_intake.application import IntakeApplication
from sandan_intake.publishing import to_contract
from sandan_intake.residents import ResidentStore
from sandan_intake.settings import Settings


def build_runtime(settings: Settings) -> ServiceRuntime:
    app = IntakeApplication(ResidentStore(settings.database_url), settings.eventstore_url, places=settings.places)
    broker = make_broker("intake", settings.kafka_bootstrap_servers)
    relay = Relay(app, broker, to_contract)
    inbox = Inbox(app, broker, settings.consumer_group, {ORDERS: app.on_order_event}, on_saved=relay.wake)

    def register(server: grpc.aio.Server) -> list[str]:
        return api.add_to_server(server, app, relay.wake)

    return ServiceRuntime(name="intake", broker=broker, relay=relay, inbox=inbox,
                          grpc_address=settings.grpc_address, register_servicers=register,
                          bootstrap=settings.kafka_bootstrap_servers)


def main() -> None:
    settings = load_or_exit("intake", Settings.from_env)
    log = setup("intake", settings.log_level)
    log.info("starting", extra={"fields": {"grpc_address": settings.grpc_address,
                                           "consumer_group": settings.consumer_group}})
    run_until_signalled(load_or_exit("intake", lambda: build_runtime(settings)))


if __name__ == "__main__":
    main()
