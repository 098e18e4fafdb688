"""An MCP server over stdio that misbehaves on purpose, chosen by its first argument.

- `crash-on-call`: lists tools, then exits the process when `explode` is called.
- `slow`: the tool `sleep` sleeps for a long time.
- `garbage`: writes lines that are not JSON-RPC to stdout instead of answering.
- `exit-at-start`: exits before the handshake.
- `bad-result`: a hand-written JSON-RPC server that completes the handshake and lists a tool, then
  answers every tool call with a result that breaks the protocol's schema.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from mcp.server.mcpserver import MCPServer


def _answer(message_id: Any, result: Any = None, error: dict[str, Any] | None = None) -> None:
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message_id}
    if error is not None:
        reply["error"] = error
    else:
        reply["result"] = result
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def serve_bad_results() -> None:
    """Speak just enough JSON-RPC by hand to list a tool, then answer calls with garbage."""
    tool = {"name": "lookup", "description": "Look something up.", "inputSchema": {"type": "object"}}
    for line in sys.stdin:
        message = json.loads(line)
        method, message_id = message.get("method"), message.get("id")
        if message_id is None:
            continue  # a notification
        if method == "initialize":
            _answer(
                message_id,
                {
                    "protocolVersion": message["params"]["protocolVersion"],
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "bad-result", "version": "1"},
                },
            )
        elif method == "tools/list":
            _answer(message_id, {"tools": [tool]})
        elif method == "tools/call":
            _answer(message_id, {"content": "this should be a list of content blocks", "isError": "maybe"})
        else:
            _answer(message_id, error={"code": -32601, "message": f"method not found: {method}"})


def main() -> None:
    mode = sys.argv[1]
    if mode == "bad-result":
        serve_bad_results()
        return
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
