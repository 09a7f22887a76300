/**
 * Chat templates: the Jinja templates Hugging Face tokenizers ship (tokenizer_config.json `chat_template`, or a
 * chat_template.jinja file), rendered with @huggingface/jinja the way transformers' `apply_chat_template` renders
 * them (trim_blocks + lstrip_blocks, `raise_exception`, `strftime_now`, special tokens as variables).
 */
import { Template } from "@huggingface/jinja";
import { z } from "zod";
import { FormatError, LlmrtError, showValue } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";

/**
 * One chat turn. Fields beyond `role` and `content` (e.g. `tool_calls`, `tool_call_id`, `name`) are passed to the
 * template unchanged.
 */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool" | (string & Record<never, never>);
  content: string;
  [field: string]: unknown;
}

/** What a chat template is rendered with. Keys beyond the named ones reach the template as they are (snake_case). */
export interface ChatTemplateContext {
  messages: readonly ChatMessage[];
  /** Append the header that opens the assistant's turn (`add_generation_prompt`). @default false */
  addGenerationPrompt?: boolean;
  /** `bos_token` in the template; left undefined there when absent. */
  bosToken?: string | null;
  /** `eos_token` in the template; left undefined there when absent. */
  eosToken?: string | null;
  /** Tool (function) schemas (`tools`); `none` in the template when absent, as transformers passes it. */
  tools?: readonly unknown[] | null;
  [extra: string]: unknown;
}

/** A chat template that failed to parse or to render, including one that called `raise_exception(...)`. */
export class ChatTemplateError extends LlmrtError {
  override name = "ChatTemplateError";
  constructor(message: string, options?: { cause?: unknown; kind?: "format" | "validation" }) {
    super(options?.kind ?? "format", message, {}, options);
  }
}

const MessagesSchema = z.array(z.object({ role: z.string(), content: z.string() }));

/**
 * A parsed chat template, reusable for any number of renders (parsing is the costly part).
 *
 * @example
 * ```ts
 * const t = new ChatTemplate("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}");
 * t.render({ messages: [{ role: "user", content: "Hi" }] }); // "<|user|>Hi"
 * ```
 */
export class ChatTemplate {
  readonly source: string;
  readonly #template: Template;

  /** Parses `source`; a syntax error is a `ChatTemplateError`. */
  constructor(source: string) {
    if (typeof source !== "string") throw new ChatTemplateError(`chat template must be a string, got ${showValue(source)}`);
    this.source = source;
    try {
      this.#template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`chat template does not parse: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Renders the conversation. A failing template (or its `raise_exception`) throws `ChatTemplateError`. */
  render(context: ChatTemplateContext): string {
    const { messages, addGenerationPrompt, bosToken, eosToken, tools, ...extra } = context;
    // Validate only; the caller's objects (with any extra fields) are what the template sees.
    parseWith(MessagesSchema, messages, "messages");
    // Spread, not Object.assign: an own `__proto__` key of `extra` (JSON.parse makes one) stays a variable
    // instead of replacing the prototype.
    const variables: Record<string, unknown> = {
      ...(bosToken != null ? { bos_token: bosToken } : {}),
      ...(eosToken != null ? { eos_token: eosToken } : {}),
      ...extra,
      messages,
      add_generation_prompt: addGenerationPrompt ?? false,
      tools: tools ?? null,
    };
    try {
      return this.#template.render(variables);
    } catch (e) {
      throw new ChatTemplateError(`chat template failed: ${(e as Error).message}`, { cause: e, kind: "validation" });
    }
  }
}

/**
 * Renders a chat template (source text or a parsed `ChatTemplate`) with the conversation.
 *
 * @example
 * ```ts
 * const text = renderChatTemplate(
 *   "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" +
 *     "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
 *   { messages: [{ role: "user", content: "Hi" }], addGenerationPrompt: true },
 * ); // "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
 * ```
 */
export function renderChatTemplate(template: string | ChatTemplate, context: ChatTemplateContext): string {
  return (typeof template === "string" ? new ChatTemplate(template) : template).render(context);
}

/** The chat templates a tokenizer directory provides: an unnamed/"default" one and any named ones. */
export interface ChatTemplates {
  /** The template used when none is named; null when the tokenizer has none (or only named ones without "default"). */
  readonly defaultTemplate: string | null;
  /** Named templates (tokenizer_config.json `chat_template` as a list of `{name, template}`), "default" included. */
  readonly named: ReadonlyMap<string, string>;
}

const ChatTemplateField = z.union([
  z.string(),
  z.array(z.object({ name: z.string(), template: z.string() })),
]).nullish();

/**
 * Reads the chat templates of a tokenizer: a chat_template.jinja file wins (as in transformers), else the
 * tokenizer_config.json `chat_template` field, a string or a list of `{name, template}` whose "default" entry is the
 * default. A malformed field is a `FormatError` naming `where`.
 *
 * @example
 * ```ts
 * const t = readChatTemplates([{ name: "default", template: "..." }, { name: "tool_use", template: "..." }]);
 * t.defaultTemplate; // "..."
 * ```
 */
export function readChatTemplates(
  configField: unknown,
  jinjaFile?: string | null,
  where = "tokenizer_config.json",
): ChatTemplates {
  if (typeof jinjaFile === "string") return { defaultTemplate: jinjaFile, named: new Map() };
  let field: Readonly<z.output<typeof ChatTemplateField>>;
  try {
    field = parseWith(ChatTemplateField, configField, "chat_template");
  } catch (e) {
    throw new FormatError(`${where}: ${(e as Error).message}`, where);
  }
  if (field == null) return { defaultTemplate: null, named: new Map() };
  if (typeof field === "string") return { defaultTemplate: field, named: new Map() };
  const named = new Map(field.map((t) => [t.name, t.template] as const));
  return { defaultTemplate: named.get("default") ?? null, named };
}
