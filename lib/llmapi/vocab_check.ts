/**
 * The tokenizer ↔ model vocabulary check of `LLM.create`, so a mismatch is found up front and not
 * mid-generation:
 * - a tokenizer that can produce an id the model has no embedding row for is an error;
 * - a tokenizer with fewer ids than the model is fine when padding explains the gap: HF models pad
 *   their vocabulary (Qwen2.5: 151,665 tokens, 151,936 rows; Phi-3: 32,011 / 32,064; DeepSeek-V2:
 *   100,015 / 102,400). A gap past max(1024, 5% of the model's rows) is another model's tokenizer
 *   (a 512-token tokenizer on a 4096-row model would fail on the first id it cannot decode).
 */
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
