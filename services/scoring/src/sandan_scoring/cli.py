"""`sandan-scoring rebuild|digest|notices|what-if`: admin commands against a running scoring service."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc

from sandan_contracts.rpc import scoring_pb2 as pb
from sandan_contracts.rpc import scoring_pb2_grpc as pb_grpc


async def run(args: argparse.Namespace) -> int:
    address = args.address or os.environ.get("SCORING_GRPC_ADDRESS", "127.0.0.1:50053")
    async with grpc.aio.insecure_channel(address) as channel:
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
