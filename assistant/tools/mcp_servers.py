"""MCP servers the person chose, their tools offered to the model, and calls to them.

The configuration is the ``mcpServers`` JSON that Claude Desktop, LM Studio and Jan use, so an
existing one can be pasted: ``{"name": {"command": ..., "args": [...], "env": {...}}}`` for a
program spoken to over stdio, ``{"name": {"url": ..., "headers": {...}}}`` for one over HTTP.
The official ``mcp`` SDK is the client. Its sessions live on one asyncio loop in a thread of
its own; each server's session is one task, from start to close, as the SDK's context
managers require. A server that fails to start, hangs or errs is one line in ``problems``; the
others work on. Every call has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 60.0
RESULT_CHARS = 20_000  # what a result may give the model; the rest is cut, and said so


class ConfigError(ValueError):
    """The mcpServers JSON is not usable; the message says where."""


@dataclass(frozen=True)
class ServerConfig:
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return self.url or " ".join([self.command or "", *self.args]).strip()

    @property
    def leaves_machine(self) -> bool:
        """An HTTP server elsewhere: "Local only" refuses it, as it does remote engines."""
        host = urlparse(self.url).hostname if self.url else None
        return host is not None and host not in ("localhost", "127.0.0.1", "::1")


def parse_config(data: Any) -> list[ServerConfig]:
    """Servers from ``{"mcpServers": {...}}`` or the mapping inside it."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ConfigError(f"The MCP configuration is not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("mcpServers"), dict):
        data = data["mcpServers"]
    if not isinstance(data, dict):
        raise ConfigError('Expected {"mcpServers": {"name": {"command": ...}}}.')
    servers = []
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"mcpServers.{name} must be an object.")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", str(name)):
            raise ConfigError(f"mcpServers.{name}: a name of letters, digits, _ . or - please.")
        url, command = spec.get("url") or spec.get("serverUrl"), spec.get("command")
        if url:
            if urlparse(str(url)).scheme not in ("http", "https"):
                raise ConfigError(f"mcpServers.{name}.url must be http:// or https://.")
            servers.append(ServerConfig(name, url=str(url), headers=_strings(spec, "headers")))
        elif isinstance(command, str) and command:
            args = spec.get("args", [])
            if not isinstance(args, list):
                raise ConfigError(f"mcpServers.{name}.args must be a list.")
            servers.append(ServerConfig(name, command, tuple(str(a) for a in args),
                                        _strings(spec, "env")))  # fmt: skip
        else:
            raise ConfigError(f"mcpServers.{name} needs a 'command' or a 'url'.")
    return servers


def _strings(spec: dict, key: str) -> dict[str, str]:
    value = spec.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"'{key}' must be an object of strings.")
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True)
class Tool:
    server: str
    name: str
    description: str
    schema: dict[str, Any]

    @property
    def key(self) -> str:
        """How the person refers to it, and how "always allow" remembers it."""
        return f"{self.server}/{self.name}"

    @property
    def function_name(self) -> str:
        """Its name for the model (OpenAI's function names: letters, digits, _ and -)."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", f"{self.server}__{self.name}")[:64]

    def openai(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.function_name, "description": self.description[:1024],
            "parameters": self.schema or {"type": "object", "properties": {}}}}  # fmt: skip


@dataclass(frozen=True)
class Result:
    text: str
    is_error: bool = False


class McpTools:
    """Sessions with the configured servers, on a loop of their own; close() ends them."""

    def __init__(self, configs: list[ServerConfig], *, local_only: bool = False):
        self.configs = configs
        self.local_only = local_only
        self.tools: list[Tool] = []
        self.problems: list[str] = []  # one line per server that is not available
        self._queues: dict[str, asyncio.Queue] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp", daemon=True)
        self._tasks: list[Future] = []

    def start(self, timeout: float = START_TIMEOUT_S) -> McpTools:
        self._thread.start()
        waiting = []
        for config in self.configs:
            if self.local_only and config.leaves_machine:
                self.problems.append(f"{config.name}: not started, “Local only” is on and it "
                                     f"is on another machine ({config.url}).")  # fmt: skip
                continue
            ready: Future = Future()
            task = asyncio.run_coroutine_threadsafe(self._serve(config, ready), self._loop)
            self._tasks.append(task)
            waiting.append((config, ready, task))
        for config, ready, task in waiting:
            try:
                listed = ready.result(timeout)
            except FutureTimeout:
                task.cancel()  # its process is ended as the session unwinds
                self.problems.append(f"{config.name}: did not answer within {timeout:.0f} s "
                                     f"({config.where}).")  # fmt: skip
                continue
            except Exception as exc:  # noqa: BLE001 - any failure of a server is its line
                self.problems.append(f"{config.name}: could not start ({_sentence(exc)}; "
                                     f"{config.where}).")  # fmt: skip
                continue
            for t in listed:
                schema = getattr(t, "input_schema", None) or getattr(t, "inputSchema", None)
                self.tools.append(Tool(config.name, t.name, t.description or "", schema or {}))
        return self

    def find(self, function_name: str) -> Tool | None:
        return next((t for t in self.tools if t.function_name == function_name), None)

    def call(
        self, tool: Tool, arguments: dict[str, Any], timeout: float = CALL_TIMEOUT_S
    ) -> Result:
        queue = self._queues.get(tool.server)
        if queue is None:
            return Result(f"{tool.server} is not running.", True)
        done: Future = Future()
        self._loop.call_soon_threadsafe(queue.put_nowait, (tool.name, arguments, timeout, done))
        try:
            return done.result(timeout + 5)
        except FutureTimeout:
            return Result(f"{tool.key} did not answer within {timeout:.0f} s.", True)
        except Exception as exc:  # noqa: BLE001 - the reply goes on without it
            return Result(f"{tool.key} failed: {_sentence(exc)}", True)

    def close(self) -> None:
        for queue in self._queues.values():
            self._loop.call_soon_threadsafe(queue.put_nowait, None)
        for task in self._tasks:
            with contextlib.suppress(Exception):
                task.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, config: ServerConfig, ready: Future) -> None:
        from mcp import ClientSession

        queue: asyncio.Queue = asyncio.Queue()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if config.url:
                    import httpx2
                    from mcp.client.streamable_http import streamable_http_client

                    http = await stack.enter_async_context(
                        httpx2.AsyncClient(headers=config.headers, timeout=CALL_TIMEOUT_S)
                    )
                    streams = await stack.enter_async_context(
                        streamable_http_client(config.url, http_client=http)
                    )
                else:
                    from mcp import StdioServerParameters
                    from mcp.client.stdio import get_default_environment, stdio_client

                    # The SDK's few safe variables (HOME, PATH...) and the server's own, not
                    # the app's whole environment (tokens and keys may be in it).
                    params = StdioServerParameters(command=config.command or "",
                                                   args=list(config.args),
                                                   env={**get_default_environment(),
                                                        **config.env})  # fmt: skip
                    errlog = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115
                    streams = await stack.enter_async_context(stdio_client(params, errlog=errlog))
                session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
                await session.initialize()
                listed = await session.list_tools()
                self._queues[config.name] = queue
                ready.set_result(listed.tools)
                while (item := await queue.get()) is not None:
                    name, arguments, timeout, done = item
                    try:
                        result = await session.call_tool(name, arguments,
                                                         read_timeout_seconds=timeout)  # fmt: skip
                        done.set_result(_result(result))
                    except Exception as exc:  # noqa: BLE001 - told to the caller
                        if isinstance(exc, TimeoutError) or "timed out" in str(exc):
                            done.set_result(Result(f"{config.name}/{name} did not answer "
                                                   f"within {timeout:.0f} s.", True))  # fmt: skip
                        else:
                            done.set_exception(exc)
        except BaseException as exc:  # noqa: BLE001 - a server's end is its own
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            else:
                log.info("MCP server %s ended: %s", config.name, exc)
        finally:
            self._queues.pop(config.name, None)


def _result(result: Any) -> Result:
    parts = []
    for item in getattr(result, "content", None) or []:
        text = getattr(item, "text", None)
        parts.append(text if text is not None else f"[{getattr(item, 'type', 'content')}]")
    text = "\n".join(parts)
    if not text and getattr(result, "structured_content", None) is not None:
        text = json.dumps(result.structured_content, ensure_ascii=False)
    if len(text) > RESULT_CHARS:
        text = text[:RESULT_CHARS] + f"\n[cut: {len(text) - RESULT_CHARS} more characters]"
    return Result(text, bool(getattr(result, "is_error", False)))


def _sentence(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _sentence(exc.exceptions[0])
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
