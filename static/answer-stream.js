// One answer's life on the wire: request, read, and resume after a dropped connection.
//
// Resuming needs no state on the server: the answer is a pure function of the request body (model,
// messages, seed, options), so the page POSTs the same body again with `Last-Event-ID: <key>:<index>`
// of the last token it has, and the server sends only what follows. The page still checks every token
// index, so that a server that repeats or skips a token is caught (`duplicates`, `gaps`), never shown.

import { ApiError, postChat } from "./chat-api.js";
import { SSEParser, readEvents } from "./sse-parser.js";

export const STOP = "stop";  // abort reasons: the reader asked to stop ...
export const DROP = "drop";  // ... or a dropped connection is being simulated (the page resumes)

// Consecutive attempts that bring no new token before the page gives up; waits between them (ms).
const MAX_ATTEMPTS = 5;
const BACKOFF_MS = [200, 500, 1000, 2000, 4000];
// HTTP statuses worth retrying in the middle of an answer: the server asks to come back later.
const TRANSIENT = new Set([429, 502, 503, 504]);

/**
 * Handlers: onToken(kind, text, index), onFinish(data), onStreamError(data), onHttpError(ApiError),
 * onReconnecting(attempt, delayMs), onStreaming(). `run()` resolves to how the answer ended:
 * "finish", "error" (a mid-stream error event), "http_error", "stopped" or "lost" (gave up resuming).
 */
export class AnswerStream {
  constructor(body, handlers) {
    this.body = body;
    this.handlers = handlers;
    this.lastIndex = -1;     // index of the last token shown
    this.lastEventId = "";   // its SSE id: what a resume sends
    this.resumes = 0;
    this.duplicates = 0;
    this.gaps = 0;
    this.controller = null;
  }

  stop() {
    this.controller?.abort(STOP);
  }

  /** Cut the connection as a network failure would; the answer resumes. */
  drop() {
    this.controller?.abort(DROP);
  }

  async run() {
    let attempts = 0;
    let delay = 0;
    for (;;) {
      if (delay > 0) {
        this.controller = new AbortController();  // Stop works during the wait too
        await sleep(delay, this.controller.signal);
        if (this.controller.signal.reason === STOP) return "stopped";
      }
      this.controller = new AbortController();
      const { signal } = this.controller;
      const before = this.lastIndex;
      let outcome;
      try {
        const response = await postChat(this.body, {
          signal,
          lastEventId: this.lastIndex >= 0 ? this.lastEventId : "",
        });
        this.handlers.onStreaming?.();
        outcome = await this.#read(response);
      } catch (error) {
        outcome = this.#failure(error, signal);
        if (outcome !== "dropped") return outcome;
      }
      if (outcome !== "dropped") return outcome;
      attempts = this.lastIndex > before ? 1 : attempts + 1;
      if (attempts > MAX_ATTEMPTS) return "lost";
      delay = this.retryMs ?? BACKOFF_MS[Math.min(attempts, BACKOFF_MS.length) - 1];
      this.retryMs = null;
      this.resumes++;
      this.handlers.onReconnecting?.(attempts, delay);
    }
  }

  #failure(error, signal) {
    if (signal.aborted) return signal.reason === DROP ? "dropped" : "stopped";
    if (error instanceof ApiError) {
      const midAnswer = this.lastIndex >= 0 || this.resumes > 0;
      if (midAnswer && TRANSIENT.has(error.status)) {
        this.retryMs = error.retryAfterMs;
        return "dropped";
      }
      this.handlers.onHttpError(error);
      return "http_error";
    }
    return "dropped";  // fetch's TypeError: the network failed, the body was cut
  }

  async #read(response) {
    for await (const event of readEvents(response, new SSEParser())) {
      switch (event.type) {
        case "token":
        case "thinking": {
          const { index, text } = JSON.parse(event.data);
          if (index <= this.lastIndex) {
            this.duplicates++;
            break;
          }
          if (index !== this.lastIndex + 1) this.gaps++;
          this.lastIndex = index;
          this.lastEventId = event.id;
          this.handlers.onToken(event.type, text, index);
          break;
        }
        case "finish":
          this.handlers.onFinish(JSON.parse(event.data));
          return "finish";
        case "error": {
          const data = JSON.parse(event.data);
          if (Number.isFinite(data.retry_ms)) {
            // The server is shutting down and says when to come back: any worker resumes the answer.
            this.retryMs = data.retry_ms;
            return "dropped";
          }
          this.handlers.onStreamError(data);
          return "error";
        }
        default:
          break;  // start, and whatever a later server adds
      }
    }
    return "dropped";  // the body ended with no finish or error: the stream was cut short
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
