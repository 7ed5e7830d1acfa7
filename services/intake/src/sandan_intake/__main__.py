"""`python -m sandan_intake`: the intake service (gRPC API, outbox relay, dispatch.orders.v1 inbox, retention)."""

from __future__ import annotations

import asyncio
import logging

import grpc

from sandan_contracts.events.dispatch import ORDERS
from sandan_eventbus.config import ConfigError, load_or_exit
from sandan_eventbus.inbox import Inbox
from sandan_eventbus.kafka import make_broker
from sandan_eventbus.logs import setup
from sandan_eventbus.relay import Relay
from sandan_eventbus.runtime import ServiceRuntime, run_until_signalled
from sandan_intake import api
from sandan_intake.application import IntakeApplication
from sandan_intake.keys import KeyringError
from sandan_intake.publishing import to_contract
from sandan_intake.residents import ResidentStore
from sandan_intake.settings import KEK, KEK_FILE, Settings

log = logging.getLogger("sandan_intake")


def open_residents(settings: Settings) -> ResidentStore:
    """The residents' store, once the keyring has shown it holds the KEKs the stored data keys need."""
    if settings.keyring is None:
        raise ConfigError(f"{KEK_FILE} or {KEK} is required: intake seals residents' personal data under keys "
                          "it wraps")
    try:
        return ResidentStore(settings.database_url, settings.keyring)
    except KeyringError as error:
        raise ConfigError(f"{KEK_FILE}/{KEK}: {error}") from None


def build_runtime(settings: Settings) -> ServiceRuntime:
    app = IntakeApplication(open_residents(settings), settings.eventstore_url, places=settings.places,
                            retention=settings.retention)
    broker = make_broker("intake", settings.kafka_bootstrap_servers)
    relay = Relay(app, broker, to_contract)
    inbox = Inbox(app, broker, settings.consumer_group, {ORDERS: app.on_order_event}, on_saved=relay.wake)

    def register(server: grpc.aio.Server) -> list[str]:
        return api.add_to_server(server, app, relay.wake)

    async def shred_expired_texts(stop: asyncio.Event) -> None:
        """Retention: closed demands' texts are shredded once the period is over (ids logged, never texts)."""
        while not stop.is_set():
            try:
                shredded = await asyncio.to_thread(app.shred_expired_texts)
                if shredded:
                    log.info("texts shredded after the retention period", extra={"fields": {
                        "demands": shredded, "retention_days": settings.retention.days}})
            except Exception:
                log.exception("retention sweep failed; will retry")
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.retention_sweep_seconds)
            except TimeoutError:
                pass

    return ServiceRuntime(name="intake", broker=broker, relay=relay, inbox=inbox,
                          grpc_address=settings.grpc_address, register_servicers=register,
                          loops=[shred_expired_texts], bootstrap=settings.kafka_bootstrap_servers)


def main() -> None:
    settings = load_or_exit("intake", Settings.from_env)
    log = setup("intake", settings.log_level)
    log.info("starting", extra={"fields": {"grpc_address": settings.grpc_address,
                                           "consumer_group": settings.consumer_group}})
    run_until_signalled(load_or_exit("intake", lambda: build_runtime(settings)))


if __name__ == "__main__":
    main()
