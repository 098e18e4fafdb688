"""An MCP tool server over a workspace directory: list, read and search text files, count words.

Agents use it to look at the material a run was given without any access outside the workspace root.
Run it over stdio (the default) or streamable HTTP:

    python examples/tools/workspace_server.py --root DIR
    python examples/tools/workspace_server.py --root DIR --http 8765
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

MAX_READ_BYTES = 64 * 1024
MAX_MATCHES = 50


def build_server(root: Path) -> MCPServer:
    """An MCP server whose tools see only files under `root`."""
    root = root.resolve()
    server = MCPServer(
        "workspace", instructions=f"Read-only access to the files of one workspace ({root.name})."
    )

    def inside(relative: str) -> Path:
        path = (root / relative).resolve()
        if path != root and root not in path.parents:
            raise ToolError(f"{relative!r} is outside the workspace")
        return path

    @server.tool()
    def list_files(directory: str = ".") -> list[str]:
        """List the files under a directory of the workspace, as paths relative to the workspace root."""
        base = inside(directory)
        if not base.is_dir():
            raise ToolError(f"{directory!r} is not a directory")
        return sorted(str(p.relative_to(root)) for p in base.rglob("*") if p.is_file())

    @server.tool()
    def read_file(path: str) -> str:
        """Read a text file of the workspace (at most 64 KiB)."""
        target = inside(path)
        if not target.is_file():
            raise ToolError(f"{path!r} is not a file")
        return target.read_bytes()[:MAX_READ_BYTES].decode("utf-8", errors="replace")

    @server.tool()
    def search_text(pattern: str, directory: str = ".") -> list[str]:
        """Find lines matching a regular expression; answers `path:line: text` for each match."""
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"{pattern!r} is not a regular expression: {exc}") from None
        matches: list[str] = []
        for file in sorted(inside(directory).rglob("*")):
            if not file.is_file():
                continue
            for number, line in enumerate(file.read_text("utf-8", errors="replace").splitlines(), 1):
                if regex.search(line):
                    matches.append(f"{file.relative_to(root)}:{number}: {line.strip()}")
                    if len(matches) >= MAX_MATCHES:
                        return matches
        return matches

    @server.tool()
    def count_words(path: str) -> dict[str, int]:
        """Count the lines, words and characters of a text file of the workspace."""
        target = inside(path)
        if not target.is_file():
            raise ToolError(f"{path!r} is not a file")
        text = target.read_text("utf-8", errors="replace")
        return {"lines": len(text.splitlines()), "words": len(text.split()), "characters": len(text)}

    return server


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the workspace directory (default: .)")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on this port")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = build_server(args.root)
    if args.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.http)


if __name__ == "__main__":
    main()
