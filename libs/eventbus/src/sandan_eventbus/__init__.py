"""Plumbing every sandan service shares, so that each service holds only its domain.

Not a contract: other systems never see it. It wires eventsourcing, Kafka and gRPC the same way in
every service (outbox relay, tracked consumers with dead letters, error mapping, JSON logs).
"""
