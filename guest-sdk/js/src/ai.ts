/**
 * Model calls through the providers the operator configured for the run's
 * workspace (the WIT `ai` interface).
 *
 * The host adds the provider's key; the guest never holds it. Input and
 * output tokens count against the run's token budget: once it is spent a
 * call throws `limit-exceeded`, and `maxTokens` is capped by what is left:
 *
 * ```ts
 * import { ai } from "orbit";
 *
 * let reply = ai.chat("local", "llama3.1:8b", "What is WebAssembly?", { maxTokens: 100 });
 * log.info(`${reply.text} (${reply.usage.outputTokens} tokens)`);
 *
 * reply = ai.chat("local", "llama3.1:8b", [
 *   ["system", "Answer in one sentence."],
 *   { role: "user", content: "What is WebAssembly?" },
 * ]);
 * const vectors = ai.embed("local", "nomic-embed-text", ["a text", "another"]);
 * ```
 *
 * Errors throw {@link OrbitError}: `not-found` for an unknown provider;
 * `permission-denied` for a model the provider does not allow or a key the
 * provider refused; `invalid-input` for a malformed request (no messages, a
 * bad temperature) or one the provider rejected; `too-large` past the
 * host's size caps; `limit-exceeded` when the run's token budget is spent;
 * `unavailable` when the provider fails or times out. An argument of the
 * wrong type throws `TypeError`, an unknown role `RangeError`.
 *
 * @module
 */

import * as wit from "orbit:runtime/ai@0.1.0";
import { type Int, call, optU32, text, typeName } from "./_host.ts";
// For the TSDoc links.
import type { OrbitError } from "./errors.ts";

/** Who wrote a message. */
export type Role = "system" | "user" | "assistant";

/** Every role. */
export const ROLES: readonly Role[] = Object.freeze(["system", "user", "assistant"] as const);

/**
 * Why generation stopped: `"stop"` (the model finished, or hit a stop
 * sequence), `"length"` (`maxTokens` reached), `"content-filter"` (the
 * provider filtered or refused the reply), `"tool-calls"` (the model asked
 * for a tool call) or `"other"`.
 */
export type FinishReason = "stop" | "length" | "content-filter" | "tool-calls" | "other";

/** One message of a conversation. */
export interface Message {
  /** Who wrote it. */
  role: Role;
  /** Its text. */
  content: string;
}

/** A {@link Message}, or a `[role, content]` pair. */
export type MessageLike = Message | readonly [Role, string];

/**
 * Generation options; each one left out takes the provider's default
 * (`maxTokens` the host's).
 */
export interface ChatOptions {
  /** Most tokens to generate (a u32); capped by the host and by the run's remaining token budget. */
  maxTokens?: Int | null;
  /** Sampling temperature, 0.0 to 2.0. */
  temperature?: number | null;
  /** Ask for a single JSON object as the reply; `false` by default. */
  json?: boolean;
}

/** A chat completion request (the WIT `chat-request` record). */
export interface ChatRequest {
  /** A provider name configured for the workspace. */
  provider: string;
  /** A model the provider allows. */
  model: string;
  /** The conversation, oldest first; at least one message. */
  messages: readonly MessageLike[];
  /** Generation options. */
  options?: ChatOptions;
}

/** Tokens counted against the run's budget for one call. */
export interface Usage {
  /** Tokens of the request. */
  readonly inputTokens: number;
  /** Tokens of the reply. */
  readonly outputTokens: number;
}

/** A chat completion. */
export interface ChatResponse {
  /** The reply text. */
  readonly text: string;
  /** Why generation stopped. */
  readonly finishReason: FinishReason;
  /** Tokens counted against the run's budget. */
  readonly usage: Usage;
}

function message(m: unknown): wit.Message {
  let role: unknown;
  let content: unknown;
  if (Array.isArray(m)) {
    if (m.length !== 2) throw new TypeError(`a message pair is [role, content], not ${m.length} items`);
    [role, content] = m;
  } else if (m !== null && typeof m === "object") {
    ({ role, content } = m as { role?: unknown; content?: unknown });
  } else {
    throw new TypeError(`a message is { role, content } or a [role, content] pair, not ${typeName(m)}`);
  }
  if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
    throw new RangeError(`unknown role ${JSON.stringify(String(role))}: expected one of ${ROLES.join(", ")}`);
  }
  return { role: role as Role, content: text("message content", content) };
}

/**
 * Send `request` and wait for the whole reply.
 *
 * @throws {@link OrbitError} see the module documentation.
 * @throws TypeError a field has the wrong type.
 * @throws RangeError a message has an unknown role.
 */
export function send(request: ChatRequest): ChatResponse {
  const opts = request.options ?? {};
  const temperature = opts.temperature;
  if (temperature !== undefined && temperature !== null && typeof temperature !== "number") {
    throw new TypeError(`temperature must be a number, not ${typeName(temperature)}`);
  }
  if (!Array.isArray(request.messages)) {
    throw new TypeError(`messages must be an array, not ${typeName(request.messages)}`);
  }
  const wire: wit.ChatRequest = {
    provider: text("provider", request.provider),
    model: text("model", request.model),
    messages: request.messages.map(message),
    options: {
      maxTokens: optU32("maxTokens", opts.maxTokens),
      temperature: temperature ?? undefined,
      json: Boolean(opts.json),
    },
  };
  const resp = call(() => wit.chat(wire));
  return {
    text: resp.text,
    finishReason: resp.finishReason,
    usage: { inputTokens: resp.usage.inputTokens, outputTokens: resp.usage.outputTokens },
  };
}

/**
 * Send a chat request to `model` of the workspace's `provider` and wait for
 * the whole reply.
 *
 * @param messages the conversation, oldest first: {@link Message} objects
 *   or `[role, content]` pairs; a plain string is one user message.
 * @param options `maxTokens` (most tokens to generate, capped by the host and
 *   by the run's remaining budget), `temperature` (0.0 to 2.0), `json` (ask
 *   for a single JSON object as the reply).
 * @throws {@link OrbitError} see the module documentation.
 */
export function chat(
  provider: string,
  model: string,
  messages: string | readonly MessageLike[],
  options: ChatOptions = {},
): ChatResponse {
  const listed: readonly MessageLike[] = typeof messages === "string" ? [{ role: "user", content: messages }] : messages;
  return send({ provider, model, messages: listed, options });
}

/**
 * Embed each of `inputs` with `model` of `provider`; one vector per input,
 * in order.
 *
 * @throws {@link OrbitError} as {@link chat}; `invalid-input` too for no
 *   inputs or a provider without embeddings (Anthropic), `too-large` for
 *   more inputs than the host allows in one call.
 * @throws TypeError `inputs` is not an array of strings.
 */
export function embed(provider: string, model: string, inputs: readonly string[]): number[][] {
  if (!Array.isArray(inputs)) throw new TypeError(`inputs must be an array of strings, not ${typeName(inputs)}`);
  const p = text("provider", provider);
  const m = text("model", model);
  const texts = inputs.map((s) => text("an input", s));
  const vectors = call(() => wit.embed(p, m, texts));
  return Array.from(vectors, (v) => Array.from(v));
}
