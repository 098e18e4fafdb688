"""An MCP server over stdio that misbehaves on purpose, chosen by its first argument.

- `crash-on-call`: lists tools, then exits the process when `explode` is called.
- `slow`: the tool `sleep` sleeps for a long time.
- `garbage`: writes lines that are not JSON-RPC to stdout instead of answering.
- `exit-at-start`: exits before the handshake.
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import MCPServer


def main() -> None:
    mode = sys.argv[1]
    if mode == "exit-at-start":
        sys.exit(3)
    if mode == "garbage":
        for _ in range(1000):
            sys.stdout.write("this is not json-rpc {{{\n")
            sys.stdout.flush()
            time.sleep(0.01)
        return
    server = MCPServer("misbehaving")

    @server.tool()
    def explode() -> str:
        """Crash the server."""
        os._exit(1)

    @server.tool()
    def sleep(seconds: float = 3600) -> str:
        """Sleep, then answer."""
        time.sleep(seconds)
        return "awake"

    @server.tool()
    def echo(text: str) -> str:
        """Answer the text back."""
        return text

    server.run("stdio")


if __name__ == "__main__":
    main()
