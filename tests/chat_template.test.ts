/**
 * Chat templates: the rendered prompt must equal transformers' apply_chat_template output exactly.
 *
 * The reference_encodings.json "chat.ids" field holds ["input_ids", "attention_mask"] (the keys of the BatchEncoding
 * transformers 5 returned), not token ids, so the chat prompt's ids are checked here by their properties instead.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FormatError, ValidationError } from "../lib/util/errors.ts";
import { ChatTemplate, ChatTemplateError, readChatTemplates, renderChatTemplate } from "../lib/tokenizer/chat_template.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import type { ChatMessage } from "../lib/tokenizer/chat_template.ts";
import { assert, sharedDir, test } from "./harness.ts";

const TOK = `${sharedDir}tokenizers/`;
const CHAT_SETS = ["tinyllama-chat", "phi-3-mini", "smollm2-135m-ft-chatml"];

interface RefChat {
  messages: ChatMessage[];
  rendered: string;
}
const loaded = new Map<string, LlmTokenizer>();
function tokenizer(dir: string): LlmTokenizer {
  let t = loaded.get(dir);
  if (!t) loaded.set(dir, t = LlmTokenizer.fromDir(dir));
  return t;
}
function refChat(name: string): RefChat {
  return JSON.parse(readFileSync(join(TOK, name, "reference_encodings.json"), "utf8")).chat;
}
function readJson(name: string, file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(TOK, name, file), "utf8"));
}

for (const name of CHAT_SETS) {
  test(`${name}: rendered chat prompt equals transformers' exactly`, () => {
    const tok = tokenizer(join(TOK, name));
    const ref = refChat(name);
    assert.equal(tok.hasChatTemplate, true);
    assert.equal(tok.applyChatTemplate(ref.messages, { addGenerationPrompt: true }), ref.rendered);
  });
}

test("without addGenerationPrompt each template ends the conversation its own way", () => {
  const cases: Record<string, [string, string]> = {
    // name: [suffix the generation prompt adds, what the template writes instead]
    "tinyllama-chat": ["<|assistant|>\n", ""],
    "phi-3-mini": ["<|assistant|>\n", "<|endoftext|>"],
    "smollm2-135m-ft-chatml": ["<|im_start|>assistant\n", ""],
  };
  for (const [name, [genPrompt, ending]] of Object.entries(cases)) {
    const ref = refChat(name);
    assert.ok(ref.rendered.endsWith(genPrompt), name);
    const expected = ref.rendered.slice(0, -genPrompt.length) + ending;
    assert.equal(tokenizer(join(TOK, name)).applyChatTemplate(ref.messages), expected, name);
  }
});

test("chat prompt ids: special tokens become their ids and decode back to the prompt", () => {
  const sm = tokenizer(join(TOK, "smollm2-135m-ft-chatml"));
  const smText = sm.applyChatTemplate(refChat("smollm2-135m-ft-chatml").messages, { addGenerationPrompt: true });
  const smIds = sm.encode(smText, { addSpecialTokens: false });
  assert.equal(smIds[0], 1);
  assert.equal(smIds.filter((id) => id === 1).length, 4);
  assert.equal(smIds.filter((id) => id === 2).length, 3);
  assert.equal(sm.decode(smIds, { skipSpecialTokens: false, spacesBetweenSpecialTokens: false }), smText);

  // tinyllama: <|user|> etc. are plain text, "</s>" is the special id 2.
  const tiny = tokenizer(join(TOK, "tinyllama-chat"));
  const tinyText = tiny.applyChatTemplate(refChat("tinyllama-chat").messages, { addGenerationPrompt: true });
  const tinyIds = tiny.encode(tinyText);
  assert.equal(tinyIds[0], 1);
  assert.equal(tinyIds.filter((id) => id === 2).length, 3);
  // As in the reference "<s> Hello world": the prompt's first "▁" is only stripped at the very start of the text.
  assert.equal(tiny.decode(tinyIds, { skipSpecialTokens: false, spacesBetweenSpecialTokens: false }), "<s> " + tinyText);
  assert.equal(tiny.decode(tinyIds, { skipSpecialTokens: true }), tinyText.replaceAll("</s>", ""));

  // phi-3: the chat tokens have rstrip=true, so the "\n" after each is absorbed (transformers does the same).
  const phi = tokenizer(join(TOK, "phi-3-mini"));
  const phiText = phi.applyChatTemplate(refChat("phi-3-mini").messages, { addGenerationPrompt: true });
  const phiIds = phi.encode(phiText);
  assert.deepEqual(phiIds.filter((id) => id >= 32000), [32010, 32007, 32001, 32007, 32010, 32007, 32001]);
  assert.ok(!phiIds.includes(13), "no <0x0A> left after rstrip tokens");
  assert.equal(
    phi.decode(phiIds, { skipSpecialTokens: false, spacesBetweenSpecialTokens: false }),
    phiText.replace(/(<\|(?:user|assistant|end)\|>)\n/g, "$1"),
  );
});

test("the tinyllama template comes from chat_template.jinja (tokenizer_config.json has none)", () => {
  const json = readJson("tinyllama-chat", "tokenizer.json");
  const config = readJson("tinyllama-chat", "tokenizer_config.json");
  const bare = LlmTokenizer.fromJson(json, config);
  assert.equal(bare.hasChatTemplate, false);
  const jinja = readFileSync(join(TOK, "tinyllama-chat", "chat_template.jinja"), "utf8");
  const withFile = LlmTokenizer.fromJson(json, config, { chatTemplate: jinja });
  const ref = refChat("tinyllama-chat");
  assert.equal(withFile.applyChatTemplate(ref.messages, { addGenerationPrompt: true }), ref.rendered);
});

test("a tokenizer without a template: clear error unless one is passed", () => {
  for (const dir of [join(TOK, "smollm"), `${sharedDir}models/stories260k`]) {
    const tok = tokenizer(dir);
    assert.equal(tok.hasChatTemplate, false);
    assert.throws(
      () => tok.applyChatTemplate([{ role: "user", content: "Hi" }]),
      (e: unknown) => e instanceof ValidationError && /has no chat template/.test(e.message) && /opts\.chatTemplate/.test(e.message),
    );
  }
  const out = tokenizer(join(TOK, "smollm")).applyChatTemplate([{ role: "user", content: "Hi" }], {
    chatTemplate: "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}{{ eos_token }}",
  });
  assert.equal(out, "<|endoftext|>[user] Hi<|endoftext|>");
});

test("named templates (tokenizer_config.json chat_template as a list)", () => {
  const json = readJson("smollm2-135m-ft-chatml", "tokenizer.json");
  const config = readJson("smollm2-135m-ft-chatml", "tokenizer_config.json");
  const list = [
    { name: "default", template: "D:{% for m in messages %}{{ m.content }}{% endfor %}" },
    { name: "tool_use", template: "T:{{ tools | length }}:{{ tools[0].name }}" },
  ];
  const tok = LlmTokenizer.fromJson(json, { ...config, chat_template: list });
  const msgs: ChatMessage[] = [{ role: "user", content: "x" }];
  assert.equal(tok.applyChatTemplate(msgs), "D:x");
  assert.equal(tok.applyChatTemplate(msgs, { chatTemplate: "tool_use", tools: [{ name: "get_time" }] }), "T:1:get_time");
  const noDefault = LlmTokenizer.fromJson(json, { ...config, chat_template: list.slice(1) });
  assert.equal(noDefault.hasChatTemplate, false);
  assert.throws(() => noDefault.applyChatTemplate(msgs), /none named "default".*\["tool_use"\]/);
  assert.throws(
    () => LlmTokenizer.fromJson(json, { ...config, chat_template: 7 }),
    (e: unknown) => e instanceof FormatError && /tokenizer_config\.json: .*chat_template/.test(e.message),
  );
});

test("template variables: special tokens, tools (none when absent), extra values, message fields", () => {
  const tok = tokenizer(join(TOK, "phi-3-mini"));
  const template = "{{ bos_token }}|{{ eos_token }}|{{ pad_token }}|{{ unk_token }}|{{ tools is none }}|{{ flag }}|" +
    "{{ add_generation_prompt }}|{{ messages[0].name }}";
  const out = tok.applyChatTemplate([{ role: "tool", content: "42", name: "calc" }], {
    chatTemplate: template,
    extra: { flag: "on" },
  });
  assert.equal(out, "<s>|<|endoftext|>|<|endoftext|>|<unk>|true|on|false|calc");
});

test("extra: a key its own argument sets is refused, not silently overridden; a __proto__ key is no prototype", () => {
  const tok = tokenizer(join(TOK, "phi-3-mini"));
  const msgs = [{ role: "user", content: "hi" }];
  for (const key of ["messages", "add_generation_prompt", "tools", "bosToken"]) {
    assert.throws(
      () => tok.applyChatTemplate(msgs, { chatTemplate: "x", extra: { [key]: false } }),
      (e: unknown) => e instanceof ValidationError && e.message.includes(`extra.${key}`) && e.message.endsWith("got false"),
    );
  }
  // JSON.parse makes `__proto__` an own key: the variables are spread (Object.assign would make it their prototype).
  const extra = JSON.parse('{"__proto__": {"flag": "from the prototype"}}');
  assert.equal(tok.applyChatTemplate(msgs, { chatTemplate: "{{ flag is defined }}", extra }), "false");
});

test("raise_exception in a template is a ChatTemplateError carrying its message", () => {
  const template = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}" +
    "{% endif %}{{ m.content }}{% endfor %}";
  assert.equal(renderChatTemplate(template, { messages: [{ role: "user", content: "ok" }] }), "ok");
  assert.throws(
    () => renderChatTemplate(template, { messages: [{ role: "system", content: "x" }] }),
    (e: unknown) => e instanceof ChatTemplateError && /System role not supported/.test(e.message),
  );
});

test("a template that does not parse is a ChatTemplateError", () => {
  assert.throws(() => new ChatTemplate("{% for m in messages %}{{ m.content }}"), ChatTemplateError);
  assert.throws(() => renderChatTemplate("{{ ", { messages: [] }), /chat template does not parse/);
});

test("messages are validated: a missing content names the field", () => {
  const t = new ChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}");
  assert.throws(
    () => t.render({ messages: [{ role: "user" } as unknown as ChatMessage] }),
    (e: unknown) => e instanceof ValidationError && /messages\.0\.content/.test(e.message),
  );
  assert.equal(t.render({ messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }] }), "ab");
});

test("readChatTemplates: chat_template.jinja wins; string; list; absent", () => {
  assert.deepEqual(readChatTemplates("S", "J").defaultTemplate, "J");
  assert.deepEqual(readChatTemplates("S").defaultTemplate, "S");
  assert.equal(readChatTemplates(undefined).defaultTemplate, null);
  const named = readChatTemplates([{ name: "rag", template: "R" }, { name: "default", template: "D" }]);
  assert.equal(named.defaultTemplate, "D");
  assert.deepEqual([...named.named.keys()], ["rag", "default"]);
  assert.throws(() => readChatTemplates([{ name: "x" }]), FormatError);
});
