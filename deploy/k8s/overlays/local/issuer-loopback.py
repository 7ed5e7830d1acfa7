"""Forward 127.0.0.1:PORT to HOST:PORT2 (TCP), so that a process in this pod or container reaches the issuer at
the address its tokens name (http://localhost:...), which browsers use too.

The gateway reads the issuer's discovery document at SANDAN_OIDC_ISSUER itself (no back-channel setting yet);
locally the issuer is http://localhost:<port>, which inside the gateway's pod (or compose container) is the
gateway itself. This sidecar makes that address reach Keycloak. Local stacks only: a county's issuer is a public
name that resolves inside the cluster too.

    python issuer-loopback.py 8080 keycloak:8080
"""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(port: int, host: str, target_port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit() or ":" not in argv[1]:
        print("usage: issuer-loopback.py LOCAL_PORT HOST:PORT", file=sys.stderr)
        return 2
    host, _, target_port = argv[1].rpartition(":")
    asyncio.run(serve(int(argv[0]), host, int(target_port)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
