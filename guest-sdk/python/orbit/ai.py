"""Model calls through the providers the operator configured for the run's
workspace (the WIT ``ai`` interface).

The host adds the provider's key; the guest never holds it. Input and
output tokens count against the run's token budget: once it is spent a call
raises ``limit-exceeded``, and ``max_tokens`` is capped by what is left::

    reply = orbit.ai.chat("local", "llama3.1:8b", "What is WebAssembly?", max_tokens=100)
    print(reply.text, reply.usage.output_tokens)

    reply = orbit.ai.chat("local", "llama3.1:8b", [
        ("system", "Answer in one sentence."),
        {"role": "user", "content": "What is WebAssembly?"},
    ])
    vectors = orbit.ai.embed("local", "nomic-embed-text", ["a text", "another"])

Errors raise :class:`orbit.Error`: ``not-found`` for an unknown provider;
``permission-denied`` for a model the provider does not allow or a key the
provider refused; ``invalid-input`` for a malformed request (no messages, a
bad temperature) or one the provider rejected; ``too-large`` past the
host's size caps; ``limit-exceeded`` when the run's token budget is spent;
``unavailable`` when the provider fails or times out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Literal, Mapping, Optional, Sequence, Tuple, Union

from . import _bindings as _b

__all__ = [
    "Role",
    "FinishReason",
    "Message",
    "ChatOptions",
    "ChatRequest",
    "Usage",
    "ChatResponse",
    "chat",
    "send",
    "embed",
]

Role = Literal["system", "user", "assistant"]
"""Who wrote a message."""

FinishReason = Literal["stop", "length", "content-filter", "tool-calls", "other"]
"""Why generation stopped: ``"stop"`` (the model finished, or hit a stop
sequence), ``"length"`` (``max_tokens`` reached), ``"content-filter"`` (the
provider filtered or refused the reply), ``"tool-calls"`` (the model asked
for a tool call) or ``"other"``."""

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One message of a conversation."""

    role: Role
    content: str


MessageLike = Union[Message, Tuple[str, str], Mapping[str, str]]
"""A :class:`Message`, a ``(role, content)`` pair, or a
``{"role": ..., "content": ...}`` mapping."""


@dataclass
class ChatOptions:
    """Generation options; each one left out takes the provider's default
    (``max_tokens`` the host's)."""

    max_tokens: Optional[int] = None
    """Most tokens to generate; capped by the host and by the run's
    remaining token budget."""
    temperature: Optional[float] = None
    """Sampling temperature, 0.0 to 2.0."""
    json: bool = False
    """Ask for a single JSON object as the reply."""


@dataclass
class ChatRequest:
    """A chat completion request (the WIT ``chat-request`` record)."""

    provider: str
    """A provider name configured for the workspace."""
    model: str
    """A model the provider allows."""
    messages: List[Message] = field(default_factory=lambda: [])
    """The conversation, oldest first; at least one message."""
    options: ChatOptions = field(default_factory=ChatOptions)

    def send(self) -> "ChatResponse":
        """Send the request; see :func:`send`."""
        return send(self)


@dataclass(frozen=True)
class Usage:
    """Tokens counted against the run's budget for one call."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ChatResponse:
    """A chat completion."""

    text: str
    """The reply text."""
    finish_reason: FinishReason
    """Why generation stopped."""
    usage: Usage
    """Tokens counted against the run's budget."""


def _message(m: Any) -> Message:
    role: Any
    content: Any
    if isinstance(m, Message):
        role, content = m.role, m.content
    elif isinstance(m, Mapping):
        role, content = m.get("role"), m.get("content")
    elif isinstance(m, tuple) and len(m) == 2:
        role, content = m
    else:
        raise TypeError(f"a message is a Message, a (role, content) pair or a mapping, not {type(m).__name__}")
    if role not in _ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(_ROLES)}")
    return Message(role, _b.text("message content", content))


def send(request: ChatRequest) -> ChatResponse:
    """Send ``request`` and wait for the whole reply.

    Raises:
        orbit.Error: see the module documentation.
    """
    wit = _b.interface("ai")
    opts = request.options
    temperature = opts.temperature
    if temperature is not None and not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a float, not {type(temperature).__name__}")
    wire = wit.ChatRequest(
        provider=_b.text("provider", request.provider),
        model=_b.text("model", request.model),
        messages=[
            wit.Message(role=wit.Role[m.role.upper()], content=m.content)
            for m in (_message(x) for x in request.messages)
        ],
        options=wit.ChatOptions(
            max_tokens=_b.opt_u32("max_tokens", opts.max_tokens),
            temperature=None if temperature is None else float(temperature),
            json=bool(opts.json),
        ),
    )
    resp = _b.call("ai", "chat", wire)
    reason: Any = resp.finish_reason.name.lower().replace("_", "-")
    return ChatResponse(
        text=resp.text,
        finish_reason=reason,
        usage=Usage(input_tokens=int(resp.usage.input_tokens), output_tokens=int(resp.usage.output_tokens)),
    )


def chat(
    provider: str,
    model: str,
    messages: Union[str, Sequence[MessageLike]],
    *,
    max_tokens: Optional[int] = None,
    temperature: Optional[float] = None,
    json: bool = False,
) -> ChatResponse:
    """Send a chat request to ``model`` of the workspace's ``provider`` and
    wait for the whole reply.

    Args:
        messages: the conversation, oldest first: :class:`Message` objects,
            ``(role, content)`` pairs or ``{"role", "content"}`` mappings;
            a plain ``str`` is one user message.
        max_tokens: most tokens to generate (capped by the host and by the
            run's remaining budget).
        temperature: sampling temperature, 0.0 to 2.0.
        json: ask for a single JSON object as the reply.

    Raises:
        orbit.Error: see the module documentation.
    """
    if isinstance(messages, str):
        listed = [Message("user", messages)]
    else:
        listed = [_message(m) for m in messages]
    options = ChatOptions(max_tokens=max_tokens, temperature=temperature, json=json)
    return send(ChatRequest(provider, model, listed, options))


def embed(provider: str, model: str, inputs: Sequence[str]) -> List[List[float]]:
    """Embed each of ``inputs`` with ``model`` of ``provider``; one vector
    per input, in order.

    Raises:
        orbit.Error: as :func:`chat`; ``invalid-input`` too for no inputs or
            a provider without embeddings (Anthropic), ``too-large`` for
            more inputs than the host allows in one call.
    """
    if isinstance(inputs, str):
        raise TypeError("inputs must be a list of str, not one str")
    texts = [_b.text("an input", s) for s in inputs]
    vectors = _b.call("ai", "embed", _b.text("provider", provider), _b.text("model", model), texts)
    return [[float(x) for x in v] for v in vectors]
