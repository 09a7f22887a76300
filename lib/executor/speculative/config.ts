/**
 * Speculative decoding options (TensorRT-LLM's `speculative_config`, camelCase): prompt lookup
 * ("NGram") or a small draft model with the target's tokenizer ("DraftTarget").
 */
import { z } from "zod";

const posInt = z.number().int().positive();

/** Prompt lookup: drafts are the tokens that followed the latest earlier match of the sequence's last n-gram. */
export const NGramConfigSchema = z.strictObject({
  decodingType: z.literal("NGram"),
  /** Draft tokens proposed per step (each verified by the target in the same forward). @default 4 */
  maxDraftLen: posInt.max(32).default(4),
  /** Longest suffix n-gram looked up (shorter ones are tried after it, down to 1). @default 4 */
  maxMatchingNgramSize: posInt.max(32).default(4),
  /** Pause drafting for a sequence whose drafts keep being rejected (backoff.ts; output unchanged). @default true */
  adaptiveDrafting: z.boolean().default(true),
});

/** A draft model (same tokenizer / vocabulary as the target) proposes the tokens. */
export const DraftTargetConfigSchema = z.strictObject({
  decodingType: z.literal("DraftTarget"),
  /** The draft model: an HF checkpoint directory or an engine directory. */
  speculativeModel: z.string().min(1),
  /** Draft tokens proposed per step. @default 4 */
  maxDraftLen: posInt.max(32).default(4),
  /** Pause drafting for a sequence whose drafts keep being rejected (backoff.ts; output unchanged). @default true */
  adaptiveDrafting: z.boolean().default(true),
});

export const SpeculativeConfigSchema = z.discriminatedUnion("decodingType", [NGramConfigSchema, DraftTargetConfigSchema]);
export type SpeculativeConfigInput = z.input<typeof SpeculativeConfigSchema>;
export type SpeculativeConfig = z.output<typeof SpeculativeConfigSchema>;
