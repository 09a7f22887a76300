/**
 * Server-sent events: a pull-driven stream of `data: <json>` events ending in `data: [DONE]`. The
 * next event is computed only when the client has taken the previous one, so a slow client gets
 * fewer, larger deltas (the executor merges them) instead of an unbounded buffer. A client that goes
 * away cancels the stream, which calls `onCancel` (the request is aborted at once).
 */

const encoder = new TextEncoder();

/** The SSE response of `events` (each a JSON-serializable payload). */
export function sseResponse(events: AsyncGenerator<unknown>, onCancel: () => void): Response {
  let done = false;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      if (done) return;
      try {
        const r = await events.next();
        if (r.done) {
          done = true;
          controller.enqueue(encoder.encode("data: [DONE]\n\n"));
          controller.close();
        } else {
          controller.enqueue(encoder.encode(`data: ${JSON.stringify(r.value)}\n\n`));
        }
      } catch (e) {
        done = true;
        controller.error(e);
      }
    },
    cancel(): void {
      done = true;
      onCancel();
      void events.return(undefined).catch(() => {});
    },
  }, { highWaterMark: 0 });
  return new Response(stream, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "connection": "keep-alive" },
  });
}
