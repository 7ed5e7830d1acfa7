"""`python -m sandan_dispatch`: run the dispatch service (gRPC + Kafka consumer + relay + deadline sweeps)."""

from __future__ import annotations

import asyncio
import logging

from sandan_dispatch import api
from sandan_dispatch.application import DispatchApplication
from sandan_dispatch.contacts import Contacts
from sandan_dispatch.keys import DemandKeys
from sandan_dispatch.publishing import to_contract
from sandan_dispatch.settings import KEK, KEK_FILE, Settings
from sandan_eventbus import metrics
from sandan_eventbus.config import ConfigError, load_or_exit
from sandan_eventbus.inbox import Inbox
from sandan_eventbus.kafka import make_broker
from sandan_eventbus.keyring import KeyringError
from sandan_eventbus.logs import setup
from sandan_eventbus.relay import Relay
from sandan_eventbus.runtime import ServiceRuntime, run_until_signalled

log = logging.getLogger("sandan_dispatch")


def open_keys(settings: Settings, contacts: Contacts) -> DemandKeys:
    """The demands' data keys, beside the contacts, once the keyring has shown it holds the KEKs they need."""
    if settings.keyring is None:
        raise ConfigError(f"{KEK_FILE} or {KEK} is required: dispatch seals the notes about services to residents")
    try:
        return DemandKeys(contacts.engine, settings.keyring)
    except KeyringError as error:
        raise ConfigError(f"{KEK_FILE}/{KEK}: {error}") from None


def build_runtime(settings: Settings) -> ServiceRuntime:
    contacts = Contacts(settings.database_url)
    app = DispatchApplication(settings.eventstore_url, contacts=contacts, places=settings.places,
                              keys=open_keys(settings, contacts))
    broker = make_broker("dispatch", settings.kafka_bootstrap)
    relay = Relay(app, broker, to_contract)
    inbox = Inbox(app, broker, settings.consumer_group, {"intake.demands.v1": app.on_demand_event},
                  on_saved=relay.wake)

    async def sweep_deadlines(stop: asyncio.Event) -> None:
        """Every few seconds: orders past their deadline become overdue and move up a level; then the county's
        pulse (orders and ratings by community) is measured anew for the metrics."""
        while not stop.is_set():
            try:
                marked = await asyncio.to_thread(app.sweep_deadlines)
                if marked:
                    log.info("orders overdue", extra={"fields": {"orders": marked}})
                    relay.wake()
                metrics.pulse(await asyncio.to_thread(app.pulse))
            except Exception:
                log.exception("deadline sweep failed; will retry")
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.deadline_sweep_seconds)
            except TimeoutError:
                pass

    servicer = api.DispatchServicer(app, on_write=relay.wake)
    return ServiceRuntime(
        name="dispatch",
        broker=broker,
        relay=relay,
        inbox=inbox,
        grpc_address=settings.grpc_address,
        register_servicers=lambda server: api.register(server, servicer),
        loops=[sweep_deadlines],
        bootstrap=settings.kafka_bootstrap,
    )


def main() -> None:
    settings = load_or_exit("dispatch", Settings.from_env)
    setup("sandan_dispatch", settings.log_level)
    run_until_signalled(load_or_exit("dispatch", lambda: build_runtime(settings)))


if __name__ == "__main__":
    main()
