"""`python -m sandan_scoring`: restore the ledger from the log, then fold live, publish, and serve gRPC."""

from __future__ import annotations

from sandan_eventbus.auth.scopes import Scopes
from sandan_eventbus.config import load_or_exit
from sandan_eventbus.kafka import make_broker
from sandan_eventbus.logs import setup
from sandan_eventbus.readiness import Readiness
from sandan_eventbus.runtime import ServiceRuntime, run_until_signalled
from sandan_scoring import api
from sandan_scoring.engine import Scorer
from sandan_scoring.rules import RuleBook
from sandan_scoring.settings import Settings
from sandan_scoring.store import ScoringStore


def build_runtime(settings: Settings) -> ServiceRuntime:
    broker = make_broker("scoring", settings.kafka_bootstrap)
    rulebook = RuleBook(settings.rules_dir)
    rulebook.get(settings.rule_set)  # fail fast on an unknown rule set
    # One readiness for the whole service: live folding and publishing report their pauses (an outage) into
    # it, and the runtime turns it into the gRPC health status.
    readiness = Readiness("scoring")
    scorer = Scorer(ScoringStore(settings.database_url), rulebook, settings.kafka_bootstrap, broker,
                    settings.rule_set, settings.replay_workers, readiness=readiness)
    servicer = api.ScoringServicer(scorer, Scopes(settings.places))
    return ServiceRuntime(
        name="scoring",
        readiness=readiness,
        broker=broker,
        relay=None,  # scoring publishes derived facts itself, with ids derived from their sources
        inbox=None,  # and reads the log with positions in its own store (no consumer group)
        grpc_address=settings.grpc_address,
        register_servicers=lambda server: api.register(server, servicer),
        loops=[scorer.run_live, scorer.run_publisher],
        on_start=scorer.restore,
    )


def main() -> None:
    settings = load_or_exit("scoring", Settings.from_env)
    setup("sandan_scoring", settings.log_level)
    run_until_signalled(load_or_exit("scoring", lambda: build_runtime(settings)))


if __name__ == "__main__":
    main()
