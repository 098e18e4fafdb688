"""`jesus dev`: a local control plane for people without Docker (build, up, down, env, status), with an
OIDC provider and its users on request (up --oidc, login), the image, a local llama.cpp server, and an
S3-compatible server for artifacts (s3)."""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from pathlib import Path

from jesus.cli import CommandError, command_parser
from jesus.devcluster import ControlPlane, ControlPlaneError, ToolchainError, ensure_all, oidc

DEFAULT_PORT = 16443


def state_dir() -> Path:
    """Where `jesus dev` keeps its control plane: $JESUS_DEV_DIR, else $XDG_STATE_HOME/jesus/dev."""
    override = os.environ.get("JESUS_DEV_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "jesus" / "dev"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    try:
        paths = ensure_all(_progress)
        if args.llamacpp:
            from jesus.devcluster import llamacpp

            paths["llama-cpp-python"] = llamacpp.ensure_server(_progress)
            paths["tiny-llama"] = llamacpp.model_path()
    except ToolchainError as exc:
        raise CommandError(str(exc)) from exc
    for name, path in sorted(paths.items()):
        print(f"{name}\t{path}")
    return 0


def _llamacpp(args: argparse.Namespace) -> int:
    import subprocess

    from jesus.devcluster import llamacpp

    try:
        llamacpp.ensure_server(_progress)
    except ToolchainError as exc:
        raise CommandError(str(exc)) from exc
    model = args.model or llamacpp.model_path()
    if not model.is_file():
        raise CommandError(f"--model {model}: no such file")
    command = llamacpp.server_command(args.port, alias=args.alias, context=args.context, model=model)
    print(
        f"Serving {model.name} as model {args.alias!r} at http://127.0.0.1:{args.port}/v1; Ctrl-C stops.",
        file=sys.stderr,
    )
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:
        return 0


def _s3(args: argparse.Namespace) -> int:
    import time

    from jesus.devcluster.s3 import S3Server, S3ServerError

    server = S3Server(args.dir or state_dir() / "s3", die_with_parent=True)
    try:
        server.start(_progress)
    except (ToolchainError, S3ServerError) as exc:
        raise CommandError(str(exc)) from exc
    # The operator's (and `jesus artifacts`') settings; a fresh credential each start.
    print(f"export JESUS_ARTIFACTS_ENDPOINT={server.endpoint}")
    print(f"export JESUS_ARTIFACTS_ACCESS_KEY_ID={server.credential.access_key}")
    print(f"export JESUS_ARTIFACTS_SECRET_ACCESS_KEY={server.credential.secret_key}")
    print(
        f"SeaweedFS's S3 API at {server.endpoint}, data in {server.directory}; Ctrl-C stops.", file=sys.stderr
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _image(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from jesus.devcluster.image import ImageError, build_image

    try:
        built = build_image(_progress)
    except ImageError as exc:
        raise CommandError(str(exc)) from exc
    fields = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in dataclasses.asdict(built).items()
    }
    if args.json:
        print(json.dumps(fields, indent=2))
        return 0
    for key, value in fields.items():
        print(f"{key}\t{json.dumps(value) if isinstance(value, dict) else value}")
    return 0


def _up(args: argparse.Namespace) -> int:
    existing = ControlPlane.load(state_dir())
    if existing is not None and existing.running():
        if existing.crashed():
            names = ", ".join(p.name for p in existing.crashed())
            raise CommandError(
                f"the control plane in {state_dir()} is partly down ({names} exited; logs there): "
                "run `jesus dev down`, then `jesus dev up`"
            )
        if args.oidc and not existing.oidc:
            raise CommandError(
                f"the control plane at {existing.server} runs without OIDC: "
                "run `jesus dev down`, then `jesus dev up --oidc`"
            )
        if args.kueue and not existing.kueue:
            raise CommandError(
                f"the control plane at {existing.server} runs without Kueue: "
                "run `jesus dev down`, then `jesus dev up --kueue`"
            )
        print(f"Control plane already running at {existing.server}; nothing started.", file=sys.stderr)
        return 0
    plane = ControlPlane(state_dir(), oidc=args.oidc, kueue=args.kueue)
    try:
        plane.start(apiserver_port=args.port, progress=_progress)
    except (ControlPlaneError, ToolchainError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"Control plane ready at {plane.server}. Point kubectl at it with:", file=sys.stderr)
    print('  eval "$(jesus dev env)"', file=sys.stderr)
    print(f"Writes to jesus.dev objects and Secrets are audited in {plane.audit_log}", file=sys.stderr)
    if plane.oidc:
        settings = plane.oidc_settings
        users = ", ".join(user.email for user in oidc.DEV_USERS)
        print(f"OIDC provider (Hydra) at {settings.issuer}; users: {users}.", file=sys.stderr)
        print("A kubeconfig as one: jesus dev login ada@example.com > ada.kubeconfig", file=sys.stderr)
    if plane.kueue:
        print(
            "Kueue runs with its webhooks; give teams queues and start the operator with --kueue "
            "(docs/scheduling.md).",
            file=sys.stderr,
        )
    return 0


def _login(args: argparse.Namespace) -> int:
    import json

    plane = ControlPlane.load(state_dir())
    if plane is None or not plane.running():
        raise CommandError("no control plane is running: start one with `jesus dev up --oidc`")
    try:
        token = plane.login(args.user)
    except ControlPlaneError as exc:
        raise CommandError(str(exc)) from exc
    claims = oidc.token_claims(token)
    print(json.dumps(oidc.kubeconfig(plane.server, plane.oidc_settings.ca_file, args.user, token), indent=2))
    expires = datetime.datetime.fromtimestamp(int(claims["exp"]), datetime.UTC).isoformat()
    print(
        f"A kubeconfig for {oidc.PREFIX}{args.user} (groups: "
        f"{', '.join(oidc.PREFIX + g for g in claims.get('groups', []))}); "
        f"its ID token expires at {expires}: run `jesus dev login` again then.",
        file=sys.stderr,
    )
    return 0


def _down(_: argparse.Namespace) -> int:
    plane = ControlPlane.load(state_dir())
    if plane is None:
        print("No control plane recorded; nothing to stop.", file=sys.stderr)
        return 0
    plane.stop()
    print("Stopped control plane.", file=sys.stderr)
    return 0


def _env(_: argparse.Namespace) -> int:
    plane = ControlPlane.load(state_dir())
    if plane is None or not plane.running():
        raise CommandError("no control plane is running: start one with `jesus dev up`")
    kubectl_dir = plane.binary("kubectl").parent
    print(f"export KUBECONFIG={shlex.quote(str(plane.kubeconfig))}")
    print(f'export PATH={shlex.quote(str(kubectl_dir))}:"$PATH"')
    return 0


def _status(_: argparse.Namespace) -> int:
    plane = ControlPlane.load(state_dir())
    if plane is None:
        print("No control plane recorded.")
        return 1
    for record in plane.processes:
        alive = record.pid in {p.pid for p in plane.running()}
        print(f"{record.name}\tpid={record.pid}\t{'running' if alive else 'EXITED'}\tlog={record.log}")
    return 0 if not plane.crashed() else 1


def _runtime(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from jesus.devcluster.runtime import ProcessRuntime
    from jesus.kube import KubeClient

    plane = ControlPlane.load(state_dir())
    if plane is None or not plane.running():
        raise CommandError("no control plane is running: start one with `jesus dev up`")

    async def serve() -> None:
        kube = await KubeClient.connect(str(plane.kubeconfig))
        runtime = ProcessRuntime(kube, args.namespace, max_processes=args.max_processes)
        print(
            f"Running Jesus pods of namespace {args.namespace} as local processes; Ctrl-C stops.",
            file=sys.stderr,
        )
        await runtime.run(asyncio.Event())

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `jesus dev` and its sub-commands."""
    parser = command_parser(subparsers, __doc__)
    commands = parser.add_subparsers(dest="dev_command", metavar="COMMAND", required=True)
    build = commands.add_parser("build", help="build the control plane and tool binaries (cached)")
    build.add_argument(
        "--llamacpp",
        action="store_true",
        help="also build the llama.cpp server and its tiny model (about 10 minutes, once)",
    )
    build.set_defaults(handler=_build)
    llama = commands.add_parser(
        "llamacpp", help="serve a model with a local llama.cpp server (the tiny test model by default)"
    )
    llama.add_argument("--port", type=int, default=8088, help="port on 127.0.0.1 (default %(default)s)")
    llama.add_argument("--alias", default="tiny-llama", help="the model name clients ask for")
    llama.add_argument("--context", type=int, default=2048, help="context size in tokens")
    llama.add_argument("--model", type=Path, help="a GGUF file to serve instead of the tiny model")
    llama.set_defaults(handler=_llamacpp)
    s3 = commands.add_parser(
        "s3",
        help="serve an S3-compatible server (SeaweedFS) for artifacts on 127.0.0.1, printing its settings",
    )
    s3.add_argument("--dir", type=Path, help="its data directory (default: the dev state directory's s3/)")
    s3.set_defaults(handler=_s3)
    image = commands.add_parser(
        "image", help="build the platform image without a daemon (cached): OCI layout, root filesystem, SBOM"
    )
    image.add_argument("--json", action="store_true", help="print the built image as JSON")
    image.set_defaults(handler=_image)
    up = commands.add_parser("up", help="build if needed, then start the control plane")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help="API server port (default %(default)s)")
    up.add_argument(
        "--oidc",
        action="store_true",
        help="also start an OIDC provider (ORY Hydra) with dev users, whose ID tokens the API server takes",
    )
    up.add_argument(
        "--kueue",
        action="store_true",
        help="also run Kueue's controller manager (quotas, priority lanes, preemption for runner Jobs)",
    )
    up.set_defaults(handler=_up)
    login = commands.add_parser(
        "login", help="print a kubeconfig for a dev OIDC user (its ID token from Hydra; needs up --oidc)"
    )
    login.add_argument("user", help="the user's email, e.g. ada@example.com")
    login.set_defaults(handler=_login)
    commands.add_parser("down", help="stop the control plane").set_defaults(handler=_down)
    commands.add_parser("env", help="print shell lines that point kubectl at it").set_defaults(handler=_env)
    commands.add_parser("status", help="show its processes").set_defaults(handler=_status)
    runtime = commands.add_parser(
        "runtime", help="run the runner pods of a namespace as local processes (kwok simulates the nodes)"
    )
    runtime.add_argument("--namespace", default="default")
    runtime.add_argument("--max-processes", type=int, default=4)
    runtime.set_defaults(handler=_runtime)
