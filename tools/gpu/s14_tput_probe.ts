// Session 14, helper tput: does the host pause by itself? (the 1B 64 x (128,128) runs lose ~5-7 ms twice a run, at the same
// steps ~30 and ~110 in r1 and r2, with only 3 JSC collections in the whole process). Two probes, no GPU:
//   1. an event loop of setImmediate turns (the executor's yield between steps) for 2 s: gaps > 0.5 ms, when
//   2. a busy loop reading performance.now() for 1 s (the thread descheduled?): gaps > 0.2 ms, when
// Each gap as "at ms: gap ms"; then the distances between the big ones.
const report = (name: string, gaps: [number, number][]): void => {
  const big = gaps.filter(([, g]) => g > 2);
  console.log(
    `${name}: ${gaps.length} gaps, sum ${gaps.reduce((a, [, g]) => a + g, 0).toFixed(2)} ms, max ${Math.max(0, ...gaps.map(([, g]) => g)).toFixed(2)} ms`,
  );
  console.log(`  largest: ${[...gaps].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([t, g]) => `${t.toFixed(0)}: ${g.toFixed(2)}`).join(", ")}`);
  console.log(`  > 2 ms at: ${big.map(([t]) => t.toFixed(0)).join(", ")}; spacing ${big.slice(1).map(([t], i) => (t - big[i][0]).toFixed(0)).join(", ")}`);
};
{
  const gaps: [number, number][] = [];
  const t0 = performance.now();
  let last = t0;
  let junk: number[] = [];
  await new Promise<void>((done) => {
    const turn = (): void => {
      const now = performance.now();
      if (now - last > 0.5) gaps.push([now - t0, now - last]);
      last = now;
      junk.push(now); // a little garbage, as a step makes
      if (junk.length > 4096) junk = [];
      if (now - t0 < 2000) setImmediate(turn);
      else done();
    };
    setImmediate(turn);
  });
  report("event loop (setImmediate turns, 2 s)", gaps);
}
{
  const gaps: [number, number][] = [];
  const t0 = performance.now();
  let last = t0;
  for (;;) {
    const now = performance.now();
    if (now - last > 0.2) gaps.push([now - t0, now - last]);
    last = now;
    if (now - t0 > 1000) break;
  }
  report("busy loop (1 s)", gaps);
}
