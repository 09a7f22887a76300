// StopChecker: end ids, stop ids, stop strings across token boundaries (real stories260k
// tokenizer), includeStopStrInOutput, minTokens, maxTokens, and the streaming hold-back.
import * as fs from "node:fs";
import { numHeldBackChars, StopChecker, type StopDecision } from "../lib/executor/stop_checker.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { assert, sharedDir, test } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { greedy_new_ids: number[] };
const tok = LlmTokenizer.fromDir(dir);
const EOS = 2;

/** Feeds `ids` one at a time (text = decode of the ids so far); returns where it stopped and the decision. */
function feed(params: SamplingParamsInput, ids: readonly number[], eosIds: number[] = [EOS]): { at: number; d: StopDecision; text: string } {
  const checker = new StopChecker(new SamplingParams(params), eosIds);
  let text = "";
  for (let i = 0; i < ids.length; i++) {
    text = tok.decode(ids.slice(0, i + 1));
    const d = checker.check(ids[i], text, i + 1);
    if (d.stop) return { at: i + 1, d, text: d.truncateTextTo !== undefined ? text.slice(0, d.truncateTextTo) : text };
  }
  return { at: -1, d: { stop: false }, text };
}

// The greedy continuation: ", there was a little girl named Lily. She loved to play ..." where
// " lo" + "ved" are two tokens (13th and 14th) and " g" + "ir" + "l" are three (6th to 8th).
const ids = ref.greedy_new_ids.slice(0, 40);

test("the fixture: 'loved' spans two tokens and 'girl' three", () => {
  assert.equal(tok.decode(ids.slice(0, 13)).endsWith(" lo"), true);
  assert.equal(tok.decode([ids[13]]), "ved");
  assert.equal(tok.decode(ids.slice(0, 8)).endsWith(" girl"), true);
  assert.equal(tok.decode(ids.slice(0, 7)).endsWith(" gir"), true);
});

test("a stop string spanning two tokens stops on the token that completes it; text cut before it", () => {
  const r = feed({ stop: "loved", maxTokens: 40 }, ids);
  assert.equal(r.at, 14);
  assert.deepEqual(r.d, { stop: true, reason: "stop", stopReason: "loved", truncateTextTo: r.text.length });
  assert.equal(r.text, ", there was a little girl named Lily. She ");
});

test("a stop string spanning three tokens; includeStopStrInOutput keeps it and cuts what follows", () => {
  const r = feed({ stop: ["gi", "zzz"], includeStopStrInOutput: true, maxTokens: 40 }, ids);
  assert.equal(r.at, 7);
  assert.equal(r.text, ", there was a little gi");
  const r2 = feed({ stop: ["girl n"], includeStopStrInOutput: true, maxTokens: 40 }, ids);
  assert.equal(r2.at, 9);
  assert.equal(r2.text, ", there was a little girl n");
  assert.equal(r2.d.stop && r2.d.stopReason, "girl n");
});

test("the earliest of several matching stop strings wins", () => {
  const checker = new StopChecker(new SamplingParams({ stop: ["cd", "bc"] }), []);
  const d = checker.check(5, "abcde", 1);
  assert.deepEqual(d, { stop: true, reason: "stop", stopReason: "bc", truncateTextTo: 1 });
});

test("end id stops with stopReason null; a stop token id is the stopReason; ignoreEos ignores only end ids", () => {
  const seqIds = [ids[0], ids[1], EOS, 77, ids[2]];
  assert.deepEqual(feed({}, seqIds).d, { stop: true, reason: "stop", stopReason: null });
  assert.equal(feed({}, seqIds).at, 3);
  const ig = feed({ ignoreEos: true, stopTokenIds: [77] }, seqIds);
  assert.equal(ig.at, 4);
  assert.deepEqual(ig.d, { stop: true, reason: "stop", stopReason: 77 });
});

test("minTokens: nothing stops before that many output tokens", () => {
  const seqIds = [ids[0], EOS, 77, EOS, ids[3]];
  assert.equal(feed({ stopTokenIds: [77] }, seqIds).at, 2);
  assert.equal(feed({ stopTokenIds: [77], minTokens: 3 }, seqIds).at, 3);
  assert.equal(feed({ stopTokenIds: [77], minTokens: 4 }, seqIds).at, 4);
  // A stop string completed before minTokens does not stop later (vLLM semantics).
  assert.equal(feed({ stop: "there", minTokens: 3 }, ids.slice(0, 30)).at, -1);
  assert.equal(feed({ stop: "there", minTokens: 2 }, ids).at, 2);
});

test("maxTokens gives 'length' unless the same token matched a stop condition", () => {
  assert.deepEqual(feed({ maxTokens: 5 }, ids), { at: 5, d: { stop: true, reason: "length", stopReason: null }, text: tok.decode(ids.slice(0, 5)) });
  const both = feed({ maxTokens: 14, stop: "loved" }, ids);
  assert.equal(both.at, 14);
  assert.equal(both.d.stop && both.d.reason, "stop");
});

test("stop strings are searched only where a new match can be (the tail), also when text is cut from the front", () => {
  const c = new StopChecker(new SamplingParams({ stop: "abc", maxTokens: 100 }), []);
  assert.equal(c.check(1, "xxab", 1).stop, false);
  assert.deepEqual(c.check(2, "xxabc", 2), { stop: true, reason: "stop", stopReason: "abc", truncateTextTo: 2 });
  // Text that shrank (re-decoded) is searched from the start again.
  const c2 = new StopChecker(new SamplingParams({ stop: "abc", maxTokens: 100 }), []);
  assert.equal(c2.check(1, "zzzzzz", 1).stop, false);
  assert.equal(c2.check(1, "abc", 2).stop, true);
});

test("numHeldBackChars holds back the longest tail that may still become a stop string", () => {
  assert.equal(numHeldBackChars("She lo", ["loved"]), 2);
  assert.equal(numHeldBackChars("She l", ["loved", "Lily"]), 1);
  assert.equal(numHeldBackChars("She ", ["loved"]), 0);
  assert.equal(numHeldBackChars("abab", ["abac"]), 2);
  assert.equal(numHeldBackChars("xab", ["abc", "b"]), 2);
  assert.equal(numHeldBackChars("She lo", ["loved"], true), 0);
  assert.equal(numHeldBackChars("She lo", []), 0);
});

test("streaming with hold-back never emits part of a stop string and ends equal to the final text", () => {
  const p = new SamplingParams({ stop: ["loved"], maxTokens: 40 });
  const checker = new StopChecker(p, [EOS]);
  let sent = "";
  let final = "";
  for (let i = 0; i < ids.length; i++) {
    const text = tok.decode(ids.slice(0, i + 1));
    const d = checker.check(ids[i], text, i + 1);
    if (d.stop) {
      final = d.truncateTextTo !== undefined ? text.slice(0, d.truncateTextTo) : text;
      sent += final.slice(sent.length);
      break;
    }
    const safe = text.length - checker.holdBack(text);
    if (safe > sent.length) sent += text.slice(sent.length, safe);
    assert.ok(!sent.endsWith(" lo"), `streamed a stop-string prefix at token ${i + 1}: ${JSON.stringify(sent)}`);
  }
  assert.equal(sent, final);
  assert.equal(final, ", there was a little girl named Lily. She ");
});
