/**
 * The tokenizer ↔ model vocabulary check of `LLM.create`, so a mismatch is found up front and not
 * mid-generation:
 * - a tokenizer that can produce an id the model has no embedding row for is an error;
 * - a tokenizer with fewer ids than the model is fine when padding explains the gap: HF models pad
 *   their vocabulary (Qwen2.5: 151,665 tokens, 151,936 rows; Phi-3: 32,011 / 32,064; DeepSeek-V2:
 *   100,015 / 102,400). A gap past max(1024, 5% of the model's rows) is another model's tokenizer
 *   (a 512-token tokenizer on a 4096-row model would fail on the first id it cannot decode).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import { ValidationError } from "../util/errors.ts";

/** Most rows a model may have past its tokenizer's ids and still be "padded": max(1024, 5%). */
export function maxVocabPadding(modelVocabSize: number): number {
  return Math.max(1024, Math.ceil(modelVocabSize * 0.05));
}

/** Throws a ValidationError naming both sizes when the tokenizer does not fit the model's vocabulary. */
export function checkTokenizerFitsModel(tokenizer: { readonly vocabSize: number }, modelVocabSize: number, tokenizerDir: string): void {
  const t = tokenizer.vocabSize;
  const where = `LLM.create options.tokenizer: the tokenizer in ${JSON.stringify(tokenizerDir)} has ${t} ids (0..${
    t - 1
  }) but the model's vocabulary is ${modelVocabSize} (vocab_size)`;
  if (t > modelVocabSize) {
    throw new ValidationError(`${where}: ids from ${modelVocabSize} up have no embedding row; use the model's own tokenizer`, "tokenizer", tokenizerDir);
  }
  const gap = modelVocabSize - t;
  if (gap > maxVocabPadding(modelVocabSize)) {
    throw new ValidationError(
      `${where}: ${gap} ids the model can generate have no token, more than vocabulary padding explains (at most ${
        maxVocabPadding(modelVocabSize)
      }); use the model's own tokenizer`,
      "tokenizer",
      tokenizerDir,
    );
  }
}

/** What a draft's and a target's tokenizer need to agree on for the draft's tokens to mean the target's. */
interface ComparableTokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | null;
  readonly bosTokenId?: number | null;
  idToToken(id: number): string | undefined;
}

/**
 * Throws a ValidationError naming `speculativeConfig.speculativeModel` when a DraftTarget draft's own tokenizer differs
 * from the target's (its vocabulary size, the token of an id, or the end / start id): the target would verify ids that
 * mean other tokens, so nearly every draft is rejected (correct output, no speed-up). vLLM refuses a vocabulary-size
 * mismatch; a different tokenizer of the same size is the same defect. A draft without tokenizer files is not checked here
 * (the executor compares the vocabulary sizes).
 */
export function checkDraftTokenizer(draft: ComparableTokenizer, target: ComparableTokenizer, draftDir: string, targetDir: string): void {
  const where = `LLM.create options.speculativeConfig.speculativeModel: the draft's tokenizer (${JSON.stringify(draftDir)}) differs from the target's (${
    JSON.stringify(targetDir)
  })`;
  const refuse = (what: string): never => {
    throw new ValidationError(`${where}: ${what}; a draft model must share the target's tokenizer`, "speculativeConfig.speculativeModel", draftDir);
  };
  if (draft.vocabSize !== target.vocabSize) refuse(`${draft.vocabSize} ids against ${target.vocabSize}`);
  for (let id = 0; id < target.vocabSize; id++) {
    const d = draft.idToToken(id), t = target.idToToken(id);
    if (d !== t) refuse(`id ${id} is ${JSON.stringify(d ?? null)} in the draft's, ${JSON.stringify(t ?? null)} in the target's`);
  }
  if (draft.eosTokenId !== target.eosTokenId) refuse(`the end-of-sequence id is ${draft.eosTokenId} in the draft's, ${target.eosTokenId} in the target's`);
  if ((draft.bosTokenId ?? null) !== (target.bosTokenId ?? null)) {
    refuse(`the start-of-sequence id is ${draft.bosTokenId ?? null} in the draft's, ${target.bosTokenId ?? null} in the target's`);
  }
}

/** `checkDraftTokenizer` on the draft's own tokenizer files when it has them (without them only vocab_size is compared). */
export function checkDraftTokenizerDir(draftDir: string, target: ComparableTokenizer, targetDir: string): void {
  if (!["tokenizer.json", "tokenizer_config.json"].every((f) => fs.existsSync(path.join(draftDir, f)))) return;
  checkDraftTokenizer(LlmTokenizer.fromDir(draftDir), target, draftDir, targetDir);
}
