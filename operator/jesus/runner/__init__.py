"""The runner: executes one AgentRun (the agent loop over the router and MCP tools) and leaves a
result record and artifacts."""

from jesus.runner.artifacts import ArtifactStore, DirectoryArtifactStore, StoredArtifact
from jesus.runner.loop import AgentTask, execute_run
from jesus.runner.model import InProcessModelClient, ModelCallError, ModelClient, ModelReply
from jesus.runner.record import RunOutcome, RunRecord
from jesus.runner.tools import ToolBox, ToolServerError, ToolServerSpec

__all__ = [
    "AgentTask",
    "ArtifactStore",
    "DirectoryArtifactStore",
    "InProcessModelClient",
    "ModelCallError",
    "ModelClient",
    "ModelReply",
    "RunOutcome",
    "RunRecord",
    "StoredArtifact",
    "ToolBox",
    "ToolServerError",
    "ToolServerSpec",
    "execute_run",
]
