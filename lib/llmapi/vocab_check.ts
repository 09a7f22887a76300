/**
 * The tokenizer ↔ model vocabulary check of `LLM.create`: a tokenizer that can produce an id the
 * model has no embedding row for is refused up front (not found mid-generation). A tokenizer with
 * fewer ids than the model is fine: HF models pad their vocabulary (Qwen2.5: 151,665 tokens, 151,936
 * rows).
 */
import { ValidationError } from "../util/errors.ts";

/** Throws a ValidationError naming both sizes when the tokenizer's ids reach past the model's vocabulary. */
export function checkTokenizerFitsModel(tokenizer: { readonly vocabSize: number }, modelVocabSize: number, tokenizerDir: string): void {
  if (tokenizer.vocabSize > modelVocabSize) {
    throw new ValidationError(
      `LLM.create options.tokenizer: the tokenizer in ${JSON.stringify(tokenizerDir)} has ${tokenizer.vocabSize} ids (0..${tokenizer.vocabSize - 1}) but the model's vocabulary is ${modelVocabSize} (vocab_size): ids from ${modelVocabSize} up have no embedding row; use the model's own tokenizer`,
      "tokenizer",
      tokenizerDir,
    );
  }
}
