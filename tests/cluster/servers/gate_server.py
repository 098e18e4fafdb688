"""An MCP server over stdio with one tool, `wait_for_gate`, that returns once a file exists.

The test that starts a run with it holds the run between two model calls for as long as it needs
(to kill and restart the router), then opens the gate by creating the file:

    python tests/cluster/servers/gate_server.py GATE_FILE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer

LONGEST_WAIT_SECONDS = 120.0


def build_server(gate: Path) -> MCPServer:
    """The server whose tool waits for `gate` to exist."""
    server = MCPServer("gate")

    @server.tool()
    def wait_for_gate() -> str:
        """Wait until the test opens the gate; say how long it took."""
        started = time.monotonic()
        while not gate.exists():
            if time.monotonic() - started > LONGEST_WAIT_SECONDS:
                raise RuntimeError(f"the gate {gate} was not opened within {LONGEST_WAIT_SECONDS:.0f} s")
            time.sleep(0.1)
        return f"the gate opened after {time.monotonic() - started:.1f} s"

    return server


if __name__ == "__main__":
    build_server(Path(sys.argv[1])).run("stdio")
