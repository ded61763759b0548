// The native chat API seen from the browser: POST /api/chat, answered by a stream of named events
// (start, thinking, token, finish, error; docs/api.md) or by an HTTP error {"error": {type, message}}.

/** An HTTP error answer: status, the body's type and message, and how long to wait (429, 503). */
export class ApiError extends Error {
  constructor(status, type, message, retryAfterMs) {
    super(message);
    this.status = status;
    this.type = type;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * POST `body` to /api/chat. Resolves to the streaming Response once the headers are in; rejects with an
 * ApiError for an HTTP error, with a TypeError when the network fails, with an AbortError on `signal`.
 * `lastEventId` resumes an answer after that token: the same body must be sent again (the stream is a
 * pure function of it), and the server skips what the page already has.
 */
export async function postChat(body, { signal, lastEventId } = {}) {
  const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const response = await fetch("/api/chat", {
    method: "POST",
    headers,
    body: JSON.stringify(body),
    signal,
    cache: "no-store",
  });
  if (response.ok && (response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
    return response;
  }
  throw await apiError(response);
}

async function apiError(response) {
  let type = "http_error";
  let message = `HTTP ${response.status} ${response.statusText}`.trim();
  try {
    const payload = await response.json();
    if (payload && payload.error) {
      type = payload.error.type || type;
      message = payload.error.message || message;
    }
  } catch {
    // Not JSON (a proxy's error page, say): the status line is all there is to say.
  }
  return new ApiError(response.status, type, message, retryAfterMs(response.headers));
}

/** retry-after-ms (OpenAI's, precise) wins over Retry-After (seconds, or an HTTP date). */
export function retryAfterMs(headers) {
  const ms = Number(headers.get("retry-after-ms"));
  if (headers.has("retry-after-ms") && Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers.get("retry-after");
  if (value === null) return null;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}
