import type { EngineDType } from "../ir/backend.ts";
import { Network } from "../ir/network.ts";
import type { PretrainedConfig } from "./config.ts";
import { loadPretrainedConfig } from "./config.ts";
import { FormatError } from "../util/errors.ts";
import { computeRopeInvFreq } from "./rope.ts";
import { Checkpoint } from "./safetensors.ts";

/** Safetensors dtypes that cannot hold a float weight (a quantized source reports its own, e.g. "INT4"). */
const INTEGER_DTYPES: ReadonlySet<string> = new Set(["I64", "I32", "I16", "I8", "U8", "BOOL"]);

/** Options when opening a model. */
export interface ModelOptions {
  /** Engine dtype to build with; "auto" keeps the checkpoint's. @default "auto" */
  readonly dtype?: EngineDType | "auto";
  /** The checkpoint directory (set by fromHuggingFace). */
  readonly sourceDir?: string;
}

/** Where a model's weights come from: any reader of checkpoint tensors by name. */
export interface WeightSource {
  has(name: string): boolean;
  readFloat32(name: string): Float32Array;
  info(name: string): { readonly shape: readonly number[]; readonly dtype?: string };
  /** Raw little-endian bytes in the tensor's own dtype (lets build() skip a float32 round trip). */
  readBytes?(name: string): Uint8Array;
  /** Raw bytes read into `dst` (exactly the tensor's byte length): build() reads fused weights' parts in place. */
  readInto?(name: string, dst: Uint8Array): void;
  /** Raw bytes of several tensors concatenated (a fused weight's parts), maybe read ahead. */
  readConcat?(names: readonly string[]): Uint8Array;
  /** Every tensor name (lets the checkpoint check find tensors the model would not use). */
  names?(): string[];
  close(): void;
}

/**
 * The Llama family as one model definition: Llama 2/3.x, Mistral, Qwen2/2.5 (q/k/v bias),
 * Qwen3 (q/k RMSNorm), SmolLM, TinyLlama. Emits a {@link Network}; weights stay in the checkpoint
 * until `build()` reads them.
 *
 * @example
 * ```ts
 * const model = LlamaForCausalLM.fromHuggingFace("../shared/models/stories260k");
 * const engine = await build(model, { maxBatchSize: 4 });
 * ```
 */
export class LlamaForCausalLM {
  constructor(
    readonly config: PretrainedConfig,
    readonly weights: WeightSource,
    readonly options: ModelOptions = {},
  ) {}

  /** Opens an HF checkpoint directory (config.json + safetensors); tensors are read lazily. */
  static fromHuggingFace(dir: string, options: ModelOptions = {}): LlamaForCausalLM {
    const config = loadPretrainedConfig(dir);
    return new LlamaForCausalLM(config, Checkpoint.open(dir), { ...options, sourceDir: dir });
  }

  /** Releases the checkpoint files. */
  close(): void {
    this.weights.close();
  }

  /**
   * The HF tensors this model reads, with their exact shapes ([out, in] for projections, as
   * transformers stores them).
   */
  checkpointShapes(): Map<string, readonly number[]> {
    return new Map(this.expectedTensors());
  }

  /** {@link checkpointShapes} one tensor at a time, layer by layer (a check can stop at the first miss). */
  *expectedTensors(): Generator<[string, readonly number[]]> {
    const c = this.config;
    const H = c.hiddenSize, hd = c.headDim, nH = c.numAttentionHeads, nKV = c.numKeyValueHeads, I = c.intermediateSize;
    yield ["model.embed_tokens.weight", [c.vocabSize, H]];
    yield ["model.norm.weight", [H]];
    if (!c.tieWordEmbeddings) yield ["lm_head.weight", [c.vocabSize, H]];
    for (let l = 0; l < c.numHiddenLayers; l++) {
      const p = `model.layers.${l}.`;
      yield [`${p}input_layernorm.weight`, [H]];
      yield [`${p}post_attention_layernorm.weight`, [H]];
      yield [`${p}self_attn.q_proj.weight`, [nH * hd, H]];
      yield [`${p}self_attn.k_proj.weight`, [nKV * hd, H]];
      yield [`${p}self_attn.v_proj.weight`, [nKV * hd, H]];
      yield [`${p}self_attn.o_proj.weight`, [H, nH * hd]];
      if (c.qkvBias) {
        yield [`${p}self_attn.q_proj.bias`, [nH * hd]];
        yield [`${p}self_attn.k_proj.bias`, [nKV * hd]];
        yield [`${p}self_attn.v_proj.bias`, [nKV * hd]];
      }
      if (c.oProjBias) yield [`${p}self_attn.o_proj.bias`, [H]];
      if (c.qkNorm) {
        yield [`${p}self_attn.q_norm.weight`, [hd]];
        yield [`${p}self_attn.k_norm.weight`, [hd]];
      }
      yield [`${p}mlp.gate_proj.weight`, [I, H]];
      yield [`${p}mlp.up_proj.weight`, [I, H]];
      yield [`${p}mlp.down_proj.weight`, [H, I]];
      if (c.mlpBias) {
        yield [`${p}mlp.gate_proj.bias`, [I]];
        yield [`${p}mlp.up_proj.bias`, [I]];
        yield [`${p}mlp.down_proj.bias`, [H]];
      }
    }
  }

  /**
   * Checks the checkpoint against the config before anything is read: every tensor the model needs
   * present with its exact shape (a transposed projection is caught, not just a wrong element
   * count), an untied model has its `lm_head.weight`, and no layer tensors are left unused (a
   * `num_hidden_layers` smaller than the checkpoint's layers). FormatError naming the tensor.
   */
  validateCheckpoint(): void {
    const files = (this.weights as { files?: readonly string[] }).files;
    const where = files?.length ? files.join(", ") : this.options.sourceDir ?? "the checkpoint";
    const fileOf = (name: string): string => (this.weights.info(name) as { path?: string }).path ?? where;
    for (const [name, shape] of this.expectedTensors()) {
      if (!this.weights.has(name)) {
        const why = name === "lm_head.weight"
          ? " (config.tie_word_embeddings is false, so the model needs its own lm_head; set it to true if the head is tied to the embeddings)"
          : "";
        throw new FormatError(`${where}: tensor '${name}' is missing${why}; expected shape [${shape.join(", ")}]`, where);
      }
      const info = this.weights.info(name);
      if (info.dtype !== undefined && INTEGER_DTYPES.has(info.dtype)) {
        throw new FormatError(`${fileOf(name)}: tensor '${name}' is ${info.dtype}; a float weight must be F32, F16, BF16, F64 or F8`, fileOf(name));
      }
      const found = info.shape;
      if (found.length !== shape.length || found.some((d, i) => d !== shape[i])) {
        const hint = found.length === 2 && shape.length === 2 && found[0] === shape[1] && found[1] === shape[0] ? " (transposed?)" : "";
        throw new FormatError(
          `${fileOf(name)}: tensor '${name}' has shape [${found.join(", ")}], expected [${shape.join(", ")}] from config.json${hint}`,
          fileOf(name),
        );
      }
    }
    const names = this.weights.names?.() ?? [];
    const L = this.config.numHiddenLayers;
    for (const name of names) {
      const layer = /^model\.layers\.(\d+)\./.exec(name);
      if (layer && Number(layer[1]) >= L) {
        throw new FormatError(
          `${where}: tensor '${name}' belongs to layer ${layer[1]}, but config.num_hidden_layers is ${L}: the checkpoint has more layers than the config`,
          where,
        );
      }
    }
  }

  /** The op graph of one forward pass over a packed token batch. */
  toNetwork(): Network {
    const c = this.config;
    const net = new Network();
    const H = c.hiddenSize, hd = c.headDim, nH = c.numAttentionHeads, nKV = c.numKeyValueHeads;
    const I = c.intermediateSize, V = c.vocabSize;
    const qkvWidth = (nH + 2 * nKV) * hd;
    const embed = net.weight("embed_tokens", [V, H], ["model.embed_tokens.weight"]);
    const hidden = net.activation("hidden", H); // [tokens, H] residual stream
    net.add({ type: "embedding", ids: "tokenIds", table: embed, out: hidden });
    for (let l = 0; l < c.numHiddenLayers; l++) {
      const p = `model.layers.${l}.`;
      const e = `layers.${l}.`;
      const normed = net.activation(`${e}attn_in`, H);
      net.add({ type: "rmsnorm", x: hidden, weight: net.weight(`${e}input_layernorm`, [H], [`${p}input_layernorm.weight`]), eps: c.rmsNormEps, out: normed });
      const qkv = net.activation(`${e}qkv`, qkvWidth);
      const qkvW = net.weight(`${e}qkv.weight`, [qkvWidth, H], ["q", "k", "v"].map((n) => `${p}self_attn.${n}_proj.weight`));
      const qkvB = c.qkvBias ? net.weight(`${e}qkv.bias`, [qkvWidth], ["q", "k", "v"].map((n) => `${p}self_attn.${n}_proj.bias`)) : undefined;
      net.add({ type: "linear", x: normed, weight: qkvW, bias: qkvB, out: qkv, outFeatures: qkvWidth, inFeatures: H });
      if (c.qkNorm) {
        net.add({
          type: "qk_norm",
          qkv,
          eps: c.rmsNormEps,
          numHeads: nH,
          numKvHeads: nKV,
          headDim: hd,
          qWeight: net.weight(`${e}q_norm`, [hd], [`${p}self_attn.q_norm.weight`]),
          kWeight: net.weight(`${e}k_norm`, [hd], [`${p}self_attn.k_norm.weight`]),
        });
      }
      const q = net.activation(`${e}q`, nH * hd);
      net.add({ type: "rope_kv_write", qkv, q, layer: l, numHeads: nH, numKvHeads: nKV, headDim: hd });
      const attn = net.activation(`${e}attn`, nH * hd);
      net.add({
        type: "paged_attention",
        q,
        out: attn,
        layer: l,
        numHeads: nH,
        numKvHeads: nKV,
        headDim: hd,
        scale: 1 / Math.sqrt(hd),
        window: c.slidingWindow ?? 0,
      });
      const o = net.activation(`${e}o`, H);
      const oB = c.oProjBias ? net.weight(`${e}o_proj.bias`, [H], [`${p}self_attn.o_proj.bias`]) : undefined;
      net.add({
        type: "linear",
        x: attn,
        weight: net.weight(`${e}o_proj.weight`, [H, nH * hd], [`${p}self_attn.o_proj.weight`]),
        bias: oB,
        out: o,
        outFeatures: H,
        inFeatures: nH * hd,
      });
      net.add({ type: "add", x: o, out: hidden });
      const normed2 = net.activation(`${e}mlp_in`, H);
      net.add({
        type: "rmsnorm",
        x: hidden,
        weight: net.weight(`${e}post_attention_layernorm`, [H], [`${p}post_attention_layernorm.weight`]),
        eps: c.rmsNormEps,
        out: normed2,
      });
      const gu = net.activation(`${e}gate_up`, 2 * I);
      const guB = c.mlpBias ? net.weight(`${e}gate_up.bias`, [2 * I], [`${p}mlp.gate_proj.bias`, `${p}mlp.up_proj.bias`]) : undefined;
      net.add({
        type: "linear",
        x: normed2,
        weight: net.weight(`${e}gate_up.weight`, [2 * I, H], [`${p}mlp.gate_proj.weight`, `${p}mlp.up_proj.weight`]),
        bias: guB,
        out: gu,
        outFeatures: 2 * I,
        inFeatures: H,
      });
      const act = net.activation(`${e}act`, I);
      net.add({ type: "silu_mul", gateUp: gu, out: act, width: I });
      const down = net.activation(`${e}down`, H);
      const dB = c.mlpBias ? net.weight(`${e}down.bias`, [H], [`${p}mlp.down_proj.bias`]) : undefined;
      net.add({
        type: "linear",
        x: act,
        weight: net.weight(`${e}down.weight`, [H, I], [`${p}mlp.down_proj.weight`]),
        bias: dB,
        out: down,
        outFeatures: H,
        inFeatures: I,
      });
      net.add({ type: "add", x: down, out: hidden });
    }
    const last = net.activation("last_hidden", H, "seqs");
    net.add({ type: "gather_rows", x: hidden, out: last });
    const final = net.activation("final_norm", H, "seqs");
    net.add({ type: "rmsnorm", x: last, weight: net.weight("norm", [H], ["model.norm.weight"]), eps: c.rmsNormEps, out: final });
    const logits = net.activation("logits", V, "seqs");
    const tied = c.tieWordEmbeddings;
    const lmHead = tied ? embed : net.weight("lm_head", [V, H], ["lm_head.weight"]);
    net.add({ type: "linear", x: final, weight: lmHead, out: logits, outFeatures: V, inFeatures: H });
    net.add({ type: "sample", logits });
    const { invFreq, attentionScaling } = computeRopeInvFreq(c);
    net.attributes = {
      numLayers: c.numHiddenLayers,
      numKvHeads: nKV,
      headDim: hd,
      vocabSize: V,
      hiddenSize: H,
      rope: { invFreq: Array.from(invFreq), attentionScaling },
      logits,
    };
    return net;
  }
}

/**
 * Picks the model class for an HF checkpoint directory by its config's architecture.
 *
 * @example
 * ```ts
 * const model = AutoModelForCausalLM.fromHuggingFace("path/to/Qwen2.5-0.5B");
 * ```
 */
export class AutoModelForCausalLM {
  /** Every supported architecture (llama, mistral, qwen2, qwen3) maps to {@link LlamaForCausalLM}. */
  static fromHuggingFace(dir: string, options: ModelOptions = {}): LlamaForCausalLM {
    return LlamaForCausalLM.fromHuggingFace(dir, options);
  }
}
