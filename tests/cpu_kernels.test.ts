// Each CPU kernel against a straightforward float64 reference written independently here.
import * as K from "../lib/backends/cpu/kernels.ts";
import { assert, test } from "./harness.ts";

/** Deterministic pseudo-random floats in [-1, 1). */
function rand(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

function maxErr(a: ArrayLike<number>, b: ArrayLike<number>): { abs: number; rel: number } {
  assert.equal(a.length, b.length, "length");
  let abs = 0, ref = 0;
  for (let i = 0; i < a.length; i++) {
    assert.ok(Number.isFinite(a[i]), `element ${i} is ${a[i]}`);
    abs = Math.max(abs, Math.abs(a[i] - b[i]));
    ref = Math.max(ref, Math.abs(b[i]));
  }
  return { abs, rel: abs / (ref || 1) };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  const e = maxErr(a, b);
  assert.ok(e.rel <= tol, `${what}: max abs ${e.abs.toExponential(2)}, rel ${e.rel.toExponential(2)} > ${tol}`);
}

test("linear matches float64 reference (odd shapes, bias)", () => {
  for (const [M, N, Kd] of [[1, 7, 5], [3, 13, 17], [5, 64, 33]]) {
    const x = rand(M * Kd, 1), w = rand(N * Kd, 2), b = rand(N, 3);
    const out = new Float32Array(M * N).fill(NaN);
    K.linear(x, w, b, M, N, Kd, out);
    const ref = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let a = b[n];
        for (let k = 0; k < Kd; k++) a += x[m * Kd + k] * w[n * Kd + k];
        ref[m * N + n] = a;
      }
    }
    close(out, ref, 1e-6, `linear ${M}x${N}x${Kd}`);
  }
});

test("rmsnorm and add_rmsnorm match float64 reference", () => {
  const rows = 3, H = 37, eps = 1e-5;
  const x = rand(rows * H, 4), w = rand(H, 5), res = rand(rows * H, 6);
  const ref = new Float64Array(rows * H), refRes = new Float64Array(rows * H);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < H; i++) {
      refRes[r * H + i] = res[r * H + i] + x[r * H + i];
      ss += refRes[r * H + i] ** 2;
    }
    for (let i = 0; i < H; i++) ref[r * H + i] = refRes[r * H + i] / Math.sqrt(ss / H + eps) * w[i];
  }
  const out = new Float32Array(rows * H).fill(NaN);
  const res2 = res.slice();
  K.addRmsnorm(x, res2, w, eps, rows, H, out);
  close(res2, refRes, 1e-6, "add_rmsnorm residual");
  close(out, ref, 1e-6, "add_rmsnorm out");
  const out2 = new Float32Array(rows * H).fill(NaN);
  K.rmsnorm(res2, w, eps, rows, H, out2);
  close(out2, ref, 1e-6, "rmsnorm");
});

test("silu_mul matches float64 reference", () => {
  const T = 4, I = 11;
  const gu = rand(T * 2 * I, 7);
  const out = new Float32Array(T * I).fill(NaN);
  K.siluMul(gu, out, T, I);
  const ref = Array.from({ length: T * I }, (_, j) => {
    const t = Math.floor(j / I), i = j % I, g = gu[t * 2 * I + i];
    return g / (1 + Math.exp(-g)) * gu[t * 2 * I + I + i];
  });
  close(out, ref, 1e-6, "silu_mul");
});

test("qk_norm normalizes each q and k head, leaves v untouched", () => {
  const T = 2, nH = 4, nKV = 2, hd = 8, eps = 1e-6, width = (nH + 2 * nKV) * hd;
  const qkv = rand(T * width, 8), qw = rand(hd, 9), kw = rand(hd, 10);
  const orig = qkv.slice();
  K.qkNorm(qkv, qw, kw, eps, T, nH, nKV, hd);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nH + 2 * nKV; h++) {
      const o = t * width + h * hd;
      const head = Array.from(orig.subarray(o, o + hd));
      let exp = head;
      if (h < nH + nKV) {
        const rms = Math.sqrt(head.reduce((a, v) => a + v * v, 0) / hd + eps);
        const w = h < nH ? qw : kw;
        exp = head.map((v, i) => v / rms * w[i]);
      }
      close(qkv.subarray(o, o + hd), exp, 1e-6, `qk_norm token ${t} head ${h}`);
    }
  }
});

/**
 * Paged rope + attention against dense float64 causal attention, with sequences laid out in
 * shuffled blocks, GQA, two sequences packed, the second one decoding after a prefill.
 */
test("rope_kv_write + paged_attention match dense causal attention (GQA, shuffled blocks, window)", () => {
  const nH = 4, nKV = 2, hd = 8, bs = 4, half = hd / 2, width = (nH + 2 * nKV) * hd;
  const invFreq = Array.from({ length: half }, (_, i) => 1 / 10000 ** ((2 * i) / hd));
  const lens = [7, 10];
  const numBlocks = 8;
  const tables = [[5, 2], [0, 7, 3]];
  const maxBlocks = 3;
  const blockTables = new Int32Array(2 * maxBlocks).fill(-1);
  tables.forEach((t, s) => blockTables.set(t, s * maxBlocks));
  const cache: K.LayerCache = { data: new Float32Array(numBlocks * 2 * bs * nKV * hd).fill(NaN), blockSize: bs, numKvHeads: nKV, headDim: hd };
  const qkvAll = lens.map((n, s) => rand(n * width, 20 + s));

  function rope(v: ArrayLike<number>, pos: number): number[] {
    const out = new Array(hd);
    for (let i = 0; i < half; i++) {
      const c = Math.cos(invFreq[i] * pos), sn = Math.sin(invFreq[i] * pos);
      out[i] = v[i] * c - v[i + half] * sn;
      out[i + half] = v[i + half] * c + v[i] * sn;
    }
    return out;
  }
  function dense(s: number, window: number): number[][] {
    const n = lens[s], q = qkvAll[s];
    const rows: number[][] = [];
    for (let t = 0; t < n; t++) {
      const row: number[] = [];
      for (let h = 0; h < nH; h++) {
        const kvh = Math.floor(h / (nH / nKV));
        const qv = rope(q.subarray(t * width + h * hd, t * width + h * hd + hd), t);
        const start = window > 0 ? Math.max(0, t + 1 - window) : 0;
        const sc: number[] = [];
        for (let j = start; j <= t; j++) {
          const kv = rope(q.subarray(j * width + (nH + kvh) * hd, j * width + (nH + kvh) * hd + hd), j);
          sc.push(qv.reduce((a, v, i) => a + v * kv[i], 0) / Math.sqrt(hd));
        }
        const m = Math.max(...sc);
        const e = sc.map((v) => Math.exp(v - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < hd; i++) {
          let acc = 0;
          for (let j = start; j <= t; j++) acc += e[j - start] / z * q[j * width + (nH + nKV + kvh) * hd + i];
          row.push(acc);
        }
      }
      rows.push(row);
    }
    return rows;
  }

  for (const window of [0, 3]) {
    // Step 1: seq 0 whole prompt, seq 1 its first 9 tokens. Step 2: seq 1's 10th token alone.
    const steps = [[[0, 0, 7], [1, 0, 9]], [[1, 9, 10]]];
    const got: number[][][] = [[], []];
    for (const step of steps) {
      const T = step.reduce((a, [, f, t]) => a + t - f, 0);
      const qkv = new Float32Array(T * width), positions = new Int32Array(T), seqStarts = new Int32Array(step.length + 1);
      const bt = new Int32Array(step.length * maxBlocks);
      let t = 0;
      step.forEach(([s, from, to], i) => {
        seqStarts[i] = t;
        bt.set(blockTables.subarray(s * maxBlocks, s * maxBlocks + maxBlocks), i * maxBlocks);
        for (let p = from; p < to; p++, t++) {
          qkv.set(qkvAll[s].subarray(p * width, p * width + width), t * width);
          positions[t] = p;
        }
      });
      seqStarts[step.length] = t;
      const g: K.BatchGeometry = { numSeqs: step.length, seqStarts, positions, blockTables: bt, maxBlocksPerSeq: maxBlocks };
      const q = new Float32Array(T * nH * hd).fill(NaN), out = new Float32Array(T * nH * hd).fill(NaN);
      K.ropeKvWrite(qkv, q, cache, g, invFreq, 1, nH, nKV, hd);
      K.pagedAttention(q, out, cache, g, nH, nKV, hd, 1 / Math.sqrt(hd), window);
      step.forEach(([s], i) => {
        for (let r = seqStarts[i]; r < seqStarts[i + 1]; r++) got[s].push(Array.from(out.subarray(r * nH * hd, (r + 1) * nH * hd)));
      });
    }
    for (const s of [0, 1]) close(got[s].flat(), dense(s, window).flat(), 1e-5, `attention seq ${s} window ${window}`);
  }
});

test("embedding rejects an id outside the vocabulary, naming it", () => {
  assert.throws(() => K.embedding(new Int32Array([3, 99]), 2, new Float32Array(40), 4, 10, new Float32Array(8)), /token id 99 at position 1/);
});

test("linear: rows computed two per pass over the weights are bit-identical to rows computed one at a time", () => {
  const Kd = 37, N = 11; // N and K off the 4-wide unroll on purpose
  for (const M of [1, 2, 3, 5]) {
    const x = Float32Array.from({ length: M * Kd }, (_, i) => Math.sin(i * 1.7) * 3);
    const w = Float32Array.from({ length: N * Kd }, (_, i) => Math.cos(i * 0.37));
    const bias = Float32Array.from({ length: N }, (_, i) => i * 0.01 - 0.05);
    for (const b of [null, bias]) {
      const all = new Float32Array(M * N);
      K.linear(x, w, b, M, N, Kd, all);
      for (let m = 0; m < M; m++) {
        const one = new Float32Array(N);
        K.linear(x.subarray(m * Kd, (m + 1) * Kd), w, b, 1, N, Kd, one);
        assert.deepEqual(Array.from(all.subarray(m * N, (m + 1) * N)), Array.from(one), `M=${M} row ${m} bias=${!!b}`);
      }
    }
  }
});
