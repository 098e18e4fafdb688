"""Tests of the runner: MCP tools, artifacts, the agent loop and the result record."""
