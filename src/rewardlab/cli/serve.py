"""`rewardlab serve`: the HTTP reward server for one spec (a thin layer over
`rewardlab.serve.create_app`), with one Runtime for the life of the process. A SIGTERM stops
taking connections, lets every request already taken finish, then exits 0."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from rewardlab.cli.common import (
    EXIT_FAILED,
    CacheOpt,
    NoCacheOpt,
    TimeoutOpt,
    WorkersOpt,
    default_cache,
    err,
    fail,
    load_reward,
)
from rewardlab.runtime.engine import Runtime


def _bind(host: str, port: int) -> socket.socket:
    """A bound listening socket (port 0: a free port, told in the ready line)."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_FAILED) from None
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_cmd(
    spec: Annotated[str, typer.Argument(help="spec file, or a reward name (with -p)")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE for a named reward")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: any free port)")] = 8000,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = None,
    max_batch: Annotated[int, typer.Option(help="most samples per batch")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="longest a sample waits for its batch to fill (ms)")] = 5.0,
    max_queue: Annotated[int, typer.Option(help="most samples waiting; beyond, 429")] = 4096,
    concurrent_batches: Annotated[int, typer.Option(help="batches scored at once")] = 2,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body; beyond, 413")] = 32 * 2**20,
    deadline: Annotated[float | None, typer.Option(
        help="seconds a request waits for its scores; a sample not scored by then is an error score")] = None,
    fallback: Annotated[float, typer.Option(help="/get_reward's value for a score that is not ok")] = 0.0,
    response_after: Annotated[str | None, typer.Option(
        help="/get_reward: the response is the query after this marker's last occurrence")] = None,
    strip: Annotated[list[str] | None, typer.Option(
        help="/get_reward: remove this text (e.g. an EOS token) from responses; repeatable")] = None,
    tokenizer: Annotated[Path | None, typer.Option(
        help="/get_reward: the policy's local Hugging Face tokenizer directory (read offline); a response ends "
             "at its first special token")] = None,
    token: Annotated[str | None, typer.Option(
        envvar="REWARDLAB_TOKEN", help="require 'Authorization: Bearer TOKEN' [env REWARDLAB_TOKEN]")] = None,
    warmup: Annotated[bool, typer.Option(help="score one empty sample before ready (loads models)")] = True,
    access_log: Annotated[bool, typer.Option(help="log every request")] = False,
) -> None:
    """Serve a reward spec over HTTP: /v1/score, OpenRLHF's /get_reward, slime's /slime, /health, /ready,
    /v1/spec, /metrics. Requests are batched together; the address, the spec's fingerprint and
    the fallback value are printed when ready."""
    try:
        import uvicorn

        from rewardlab.serve import QuerySplitter, ServeConfig, create_app
        from rewardlab.serve.openrlhf import tokenizer_specials
    except ImportError as exc:
        raise fail(f"the server needs the serve extra (pip install 'rewardlab[serve]'): {exc}") from None
    try:
        specials = tokenizer_specials(tokenizer) if tokenizer is not None else ()
    except (ImportError, ValueError) as exc:
        raise fail(f"--tokenizer: {exc}") from None
    built = load_reward(spec, param)
    if max_wait_ms < 0:
        raise fail("--max-wait-ms must be >= 0")
    try:
        config = ServeConfig(max_batch=max_batch, max_wait=max_wait_ms / 1000, max_queue=max_queue,
                             concurrent_batches=concurrent_batches, max_body_bytes=max_body_bytes,
                             fallback=fallback, token=token or None, warmup=warmup, deadline=deadline,
                             splitter=QuerySplitter(response_after or None, tuple(strip or ()), specials))
        cache_path = None if no_cache else (cache or default_cache())
        rt = Runtime(workers=workers, timeout=timeout, cache=cache_path,
                     on_cache_error=lambda msg: err.print(f"[yellow]warning:[/yellow] {escape(msg)}"))
    except ValueError as exc:
        raise fail(str(exc)) from None
    sock = _bind(host, port)
    print(f"listening {_url(sock)} (ready once warmed up)", flush=True)
    try:
        app = create_app(built, rt, config)
        server = _make_server(uvicorn.Config(app, log_level="warning", access_log=access_log, lifespan="on"),
                              banner=_banner(_url(sock), built, config, cache_path, tokenizer))
        # uvicorn takes SIGTERM/SIGINT for a graceful stop, then raises them again: after a
        # graceful stop, a SIGTERM has nothing left to do
        signal.signal(signal.SIGTERM, lambda *_: None)
        server.run(sockets=[sock])
    finally:
        sock.close()
        rt.close()
    err.print("rewardlab serve: stopped")


def _banner(url: str, spec: Any, config: Any, cache: Path | None, tokenizer: Path | None = None) -> str:
    batching = (f"at most {config.max_batch} samples, {config.max_wait * 1000:g} ms wait, "
                f"{config.concurrent_batches} at once, queue {config.max_queue} samples")
    lines = [f"rewardlab serve {url}",
             f"  spec        {spec.fingerprint}" + (f"  ({spec.description})" if spec.description else ""),
             f"  fallback    {config.fallback:g}  (/get_reward's value for a score that is not ok; "
             "extra_logs.rewardlab_ok = 0 marks it)",
             f"  batching    {batching}",
             f"  deadline    {f'{config.deadline:g} s per request' if config.deadline else 'none'}",
             f"  cache       {cache or 'off'}",
             f"  token       {'required' if config.token else 'none'}"]
    if tokenizer is not None:
        lines.append(f"  tokenizer   {tokenizer}  ({len(config.splitter.special)} special tokens; "
                     "a /get_reward response ends at its first)")
    return "\n".join(lines)


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, announcing the address once the app is warmed up and listening."""

        def __init__(self, config: uvicorn.Config, banner: str) -> None:
            super().__init__(config)
            self.banner = banner
            self._announcing: asyncio.Task[None] | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not self.should_exit:
                self._announcing = asyncio.get_running_loop().create_task(self._announce())

        async def _announce(self) -> None:
            app = self.config.app
            await app.state.ready.wait()
            warm = app.state.warmup["warmup"]
            print(self.banner + (f"\n  warm-up     {warm}" if warm else "") + "\nready", flush=True)

    return Server


def _make_server(config: Any, banner: str) -> Any:
    """The announcing server (its class is made on first use: uvicorn is an extra)."""
    return _server_class()(config, banner)
