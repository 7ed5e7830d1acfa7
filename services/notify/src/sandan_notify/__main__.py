"""`python -m sandan_notify`: the notify service (inbox of four topics, planner, one lane per channel,
outbox relay to notify.deliveries.v1, gRPC API)."""

from __future__ import annotations

import grpc

from sandan_contracts.events.dispatch import ORDERS, ROSTER
from sandan_contracts.events.intake import TOPIC as DEMANDS
from sandan_contracts.events.scoring import NOTICES
from sandan_eventbus import security
from sandan_eventbus.config import load_or_exit
from sandan_eventbus.inbox import Inbox
from sandan_eventbus.kafka import make_broker
from sandan_eventbus.logs import setup
from sandan_eventbus.relay import Relay
from sandan_eventbus.runtime import ServiceRuntime, run_until_signalled
from sandan_eventbus.security import GrpcTlsSettings, OidcSettings
from sandan_notify import api
from sandan_notify.application import NotifyApplication
from sandan_notify.channels import (
    Channel,
    ConsoleChannel,
    EmailChannel,
    SmsChannel,
    WebhookChannel,
    WeChatChannel,
)
from sandan_notify.clock import Clock, FakeClock, utc_now
from sandan_notify.contacts import GrpcContacts
from sandan_notify.delivery import Worker
from sandan_notify.directory import Offices
from sandan_notify.domain import RetryPolicy
from sandan_notify.publishing import to_contract
from sandan_notify.settings import Settings


def build_channels(s: Settings) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    timeout = s.send_timeout_seconds
    if s.smtp is not None:
        channels["email"] = EmailChannel(s.smtp.host, s.smtp.port, s.smtp.sender, username=s.smtp.username,
                                         password=s.smtp.password, security=s.smtp.security, timeout=timeout)
    if s.webhook_secret:
        channels["webhook"] = WebhookChannel(s.webhook_secret.encode(), timeout)
    if s.sms_url:
        channels["sms"] = SmsChannel(s.sms_url, s.sms_body, s.sms_token, timeout, s.sms_content_type)
    if s.wechat_url:
        channels["wechat"] = WeChatChannel(s.wechat_url, s.wechat_template_id, timeout)
    if s.console:
        channels["console"] = ConsoleChannel(None if s.console == "stderr" else s.console)
    return channels


def build_runtime(settings: Settings) -> ServiceRuntime:
    # notify calls intake and dispatch as itself (client credentials; role service_notify), over TLS where
    # configured: without its identity it could reach nobody, so it does not start (ConfigError names it)
    oidc: OidcSettings = security.load(OidcSettings)
    tls: GrpcTlsSettings = security.load(GrpcTlsSettings)
    identity, credentials = oidc.identity(), tls.channel_credentials()
    offices = Offices(settings.offices_file)
    contacts = GrpcContacts(settings.intake_address, settings.dispatch_address, identity, offices,
                            credentials=credentials, timeout=min(5.0, settings.send_timeout_seconds))
    # Not for production: NOTIFY_FAKE_NOW moves notify's clock (quiet hours, retry times) for tests.
    clock: Clock = FakeClock(settings.fake_now) if settings.fake_now else utc_now
    app = NotifyApplication(
        settings.eventstore_url, database_url=settings.database_url, offices=offices, contacts=contacts,
        channels=build_channels(settings), clock=clock,
        policy=RetryPolicy(settings.max_attempts, settings.backoff_base_seconds, settings.backoff_cap_seconds),
        utc_offset=settings.utc_offset, default_quiet=settings.quiet_hours)
    broker = make_broker("notify", settings.kafka_bootstrap_servers)
    relay = Relay(app, broker, to_contract)
    worker = Worker(app, on_saved=relay.wake, concurrency=settings.lane_concurrency,
                    poll_seconds=settings.poll_seconds)

    def saved() -> None:
        worker.wake()
        relay.wake()

    handlers = {topic: app.on_event for topic in (ROSTER, ORDERS, DEMANDS, NOTICES)}
    inbox = Inbox(app, broker, settings.consumer_group, handlers, on_saved=saved)

    def register(server: grpc.aio.Server) -> list[str]:
        return api.add_to_server(server, app, worker.wake)

    return ServiceRuntime(name="notify", broker=broker, relay=relay, inbox=inbox, grpc_address=settings.grpc_address,
                          register_servicers=register, loops=worker.loops(),  # type: ignore[arg-type]
                          bootstrap=settings.kafka_bootstrap_servers, oidc=oidc, tls=tls)


def main() -> None:
    settings = load_or_exit("notify", Settings.from_env)
    log = setup("notify", settings.log_level)
    log.info("starting", extra={"fields": {"grpc_address": settings.grpc_address, "channels": settings.channels,
                                           "consumer_group": settings.consumer_group,
                                           "fake_now": settings.fake_now or None}})
    if settings.fake_now:
        log.warning("NOTIFY_FAKE_NOW is set: the clock is fake (tests only, not for production)")
    run_until_signalled(load_or_exit("notify", lambda: build_runtime(settings)))


if __name__ == "__main__":
    main()
