"""`sandan-scoring rebuild|digest|notices|what-if`: admin commands against a running scoring service.

Called as a person: `--token` (or SANDAN_TOKEN) is the caller's access token (an operator's for rebuild; a county
office's or an operator's for digest and what-if; a county office's for notices). TLS to the service as every
service calls another: SANDAN_GRPC_TLS_CA_FILE, or SANDAN_GRPC_PLAINTEXT=allow for a local run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc

from sandan_contracts.rpc import scoring_pb2 as pb
from sandan_contracts.rpc import scoring_pb2_grpc as pb_grpc
from sandan_eventbus import channels, security
from sandan_eventbus.auth.client import AioBearerAuth, StaticToken
from sandan_eventbus.config import ConfigError, load_or_exit
from sandan_eventbus.security import GrpcTlsSettings


def connect(address: str, token: str) -> grpc.aio.Channel:
    if not token:
        raise ConfigError("a token is required: --token or SANDAN_TOKEN (an operator's or a county office's)")
    tls: GrpcTlsSettings = security.load(GrpcTlsSettings)
    return channels.aio_channel(address, tls.channel_credentials(), [AioBearerAuth(StaticToken(token))])


async def run(args: argparse.Namespace) -> int:
    address = args.address or os.environ.get("SCORING_GRPC_ADDRESS", "127.0.0.1:50053")
    token = args.token or os.environ.get("SANDAN_TOKEN", "")
    async with load_or_exit("sandan-scoring", lambda: connect(address, token)) as channel:
        stub = pb_grpc.ScoringStub(channel)
        if args.command == "rebuild":
            async for p in stub.Rebuild(pb.RebuildRequest(rule_set_version=args.rules or "")):
                line = f"{p.phase:8} {p.events_read}/{p.events_total}"
                if p.phase == "done":
                    line += f" in {p.seconds:.2f}s rules={p.rule_set_version} digest={p.digest}"
                print(line, flush=True)
        elif args.command == "digest":
            d = await stub.Digest(pb.Empty())
            print(f"{d.digest} generation={d.generation} rules={d.rule_set_version} entries={d.entries}")
        elif args.command == "notices":
            published = await stub.PublishQuarterlyNotices(pb.QuarterRef(quarter=args.quarter))
            print("\n".join(published.notice_ids) or "nothing to publish")
        elif args.command == "what-if":
            report = await stub.WhatIf(pb.WhatIfRequest(rule_set_version=args.rules, quarter=args.quarter))
            print(f"member            {report.current_version:>10} {report.candidate_version:>10}")
            for m in report.members:
                print(f"{m.member_id:16} {m.current_points:>10} {m.candidate_points:>10}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="sandan-scoring")
    parser.add_argument("--address", default="")
    parser.add_argument("--token", default="", help="the caller's access token (default: SANDAN_TOKEN)")
    sub = parser.add_subparsers(dest="command", required=True)
    rebuild = sub.add_parser("rebuild", help="replay the event log and swap the rebuilt ledger in")
    rebuild.add_argument("--rules", default="", help="rule set version (default: the active one)")
    sub.add_parser("digest", help="print the digest of the current ledger and summaries")
    notices = sub.add_parser("notices", help="publish the quarterly notices")
    notices.add_argument("quarter")
    what_if = sub.add_parser("what-if", help="compare totals under another rule set")
    what_if.add_argument("rules")
    what_if.add_argument("quarter")
    try:
        sys.exit(asyncio.run(run(parser.parse_args())))
    except grpc.aio.AioRpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
