"""The HTTP gateway: agents served over an OpenAI-compatible API (`agent-platform serve`).

Laid out as vLLM's OpenAI server is: `protocol.py` holds the wire models, `serving.py` turns a
request into `AgentRuntime` calls and knows nothing of HTTP, `api_router.py` holds thin FastAPI
routes, `middleware.py` the cross-cutting concerns (trace ids, body limit, backpressure, metrics,
and the hook points where authentication and policy go), `problems.py` maps the library's errors
to RFC 9457 problem details once, at the edge, and `app.py` builds the application.
"""

from agent_platform.gateway.app import create_app

__all__ = ["create_app"]
