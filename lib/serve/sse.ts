/**
 * Server-sent events, push-driven: the producer is woken synchronously when its source has news
 * (an executor step's outputs) and enqueues `data: <json>` events at once, ending with
 * `data: [DONE]` — no promise or async-iterator hop per token, and the executor never waits for a
 * consumer. Flow control: while the client has not taken the events already queued (`desiredSize`
 * ≤ 0) nothing more is produced, so a slow client later gets fewer, larger deltas (the executor
 * merges unread outputs) instead of an unbounded buffer. A client that goes away cancels the
 * stream, which calls `onCancel` (the request is aborted at once).
 */

const encoder = new TextEncoder();
const DONE = encoder.encode("data: [DONE]\n\n");
/** Events queued unread before the producer pauses. */
const HIGH_WATER_MARK = 4;

/** What an SSE response streams. */
export interface SseSource {
  /** Registers `wake`, to be called synchronously whenever the source has news (and may call it at once). */
  subscribe(wake: () => void): void;
  /**
   * Writes the events ready now with `send` (each a JSON text); returns true when the stream is
   * complete ([DONE] follows). Must not throw; an error is itself an event.
   */
  drain(send: (json: string) => void): boolean;
  /** The client went away before the end. */
  onCancel(): void;
}

/** The SSE response of `source`. */
export function sseResponse(source: SseSource): Response {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  let pumping = false;
  const send = (json: string): void => controller.enqueue(encoder.encode(`data: ${json}\n\n`));
  const pump = (): void => {
    if (closed || pumping) return;
    // The client is behind: outputs merge in the executor until it reads (its read calls pull).
    if ((controller.desiredSize ?? 1) <= 0) return;
    pumping = true;
    try {
      if (source.drain(send)) {
        closed = true;
        controller.enqueue(DONE);
        controller.close();
      }
    } catch (e) {
      closed = true;
      controller.error(e);
    } finally {
      pumping = false;
    }
  };
  const stream = new ReadableStream<Uint8Array>({
    start(c): void {
      controller = c;
    },
    pull(): void {
      pump();
    },
    cancel(): void {
      if (closed) return;
      closed = true;
      source.onCancel();
    },
  }, { highWaterMark: HIGH_WATER_MARK });
  source.subscribe(pump);
  return new Response(stream, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "connection": "keep-alive" },
  });
}
