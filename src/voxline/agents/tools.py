"""Running the session's tools for a brain: client-loop tools and engine-POSTed tools.

A client-loop tool is sent to the client as ``tool_call`` and answered by its
``tool_result``; a tool with an ``endpoint`` is POSTed by the server. Either way the brain
gets text back within the budget, ``{"error": "tool timed out"}`` when it ran out, and at
most 6 KB of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import httpx

from voxline.protocol import events
from voxline.protocol.client_frames import MAX_TOOL_OUTPUT_BYTES, Tool, ToolResult, truncate_utf8
from voxline.session.agent import ConversationHost

log = logging.getLogger(__name__)

TOOL_BUDGET_SECONDS: Final = 5.0
TIMED_OUT: Final = json.dumps({"error": "tool timed out"})


class SessionTools:
    """A :class:`~voxline.engines.brain.ToolRunner` over one session's configured tools."""

    def __init__(
        self,
        tools: Sequence[Tool],
        host: ConversationHost,
        http: httpx.AsyncClient,
        *,
        call_id: str,
        budget: float = TOOL_BUDGET_SECONDS,
        new_id: Callable[[], str] = lambda: f"tool_{uuid.uuid4().hex[:16]}",
    ) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._host = host
        self._http = http
        self._call_id = call_id
        self._budget = budget
        self._new_id = new_id

    async def __call__(self, name: str, arguments: dict[str, Any]) -> str:
        tool = self._tools.get(name)
        if tool is None:
            return json.dumps({"error": f"no tool named {name}"})
        run: Awaitable[str] = (
            self._post(tool, arguments) if tool.endpoint else self._client_loop(tool, arguments)
        )
        try:
            async with asyncio.timeout(self._budget):
                output = await run
        except TimeoutError:
            return TIMED_OUT
        return truncate_utf8(output, MAX_TOOL_OUTPUT_BYTES)

    async def _client_loop(self, tool: Tool, arguments: dict[str, Any]) -> str:
        tool_call_id = self._new_id()
        waiter = self._host.wait_tool_result(tool_call_id)
        await self._host.send_event(
            events.tool_call(call_id=tool_call_id, name=tool.name, arguments=arguments)
        )
        result: ToolResult = await waiter
        if result.error is not None:
            return json.dumps({"error": result.error, "output": result.output or None})
        return result.output

    async def _post(self, tool: Tool, arguments: dict[str, Any]) -> str:
        assert tool.endpoint is not None
        try:
            response = await self._http.post(
                tool.endpoint,
                json={"name": tool.name, "arguments": arguments, "call_id": self._call_id},
            )
        except httpx.HTTPError as exc:
            log.warning("tool %s endpoint failed: %s", tool.name, type(exc).__name__)
            return json.dumps({"error": f"tool endpoint unreachable: {type(exc).__name__}"})
        if response.is_error:
            return json.dumps({"error": f"tool endpoint answered HTTP {response.status_code}"})
        return response.text
