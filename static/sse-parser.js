// An incremental text/event-stream parser for fetch() bodies (WHATWG HTML §9.2.6).
//
// Why not EventSource: it can only GET, cannot send a JSON body or our own headers, and reconnects on
// its own terms. The chat POSTs, so it reads the response body itself and needs the same parsing rules:
// lines end with CR, LF or CRLF (never U+2028 & co.), and a network chunk may end anywhere, inside a
// line, between the CR and LF of a CRLF, or inside a UTF-8 character (TextDecoder's stream mode keeps
// that one).

export class SSEParser {
  constructor() {
    this.lastEventId = "";  // persists across events, as EventSource's does
    this.retry = null;      // the last valid `retry:` (ms), if any
    this.#reset();
    this.buffer = "";
    this.skipLF = false;    // the previous chunk ended with CR: an LF now is the second half of CRLF
    this.started = false;
  }

  #reset() {
    this.data = "";
    this.hasData = false;
    this.type = "";
  }

  /** Parse a chunk of decoded text; return the events it completed ({type, data, id}). */
  feed(text) {
    const events = [];
    if (!this.started && text.length) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);  // one leading BOM is ignored
    }
    if (this.skipLF && text.startsWith("\n")) text = text.slice(1);
    this.skipLF = false;
    const buffer = this.buffer + text;
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.#line(buffer.slice(start, i), events);
      if (c === 13) {
        if (i + 1 === buffer.length) this.skipLF = true;  // decide when the next chunk comes
        else if (buffer.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.buffer = buffer.slice(start);
    return events;
  }

  /** The stream ended: an unfinished line or event is discarded, as the spec says. */
  end() {
    this.buffer = "";
    this.skipLF = false;
    this.#reset();
    return [];
  }

  #line(line, events) {
    if (line === "") {
      // A blank line dispatches, unless no data line came (then nothing, not even an empty event).
      if (this.hasData) {
        events.push({ type: this.type || "message", data: this.data.slice(0, -1), id: this.lastEventId });
      }
      this.#reset();
      return;
    }
    if (line.startsWith(":")) return;  // a comment (heartbeats)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);  // exactly one space is stripped
    switch (field) {
      case "event": this.type = value; break;
      case "data": this.data += value + "\n"; this.hasData = true; break;
      case "id": if (!value.includes("\0")) this.lastEventId = value; break;
      case "retry": if (/^[0-9]+$/.test(value)) this.retry = Number(value); break;
      default: break;  // unknown fields are ignored
    }
  }
}

/**
 * Read a fetch Response body as server-sent events. Yields {type, data, id}; returns when the body
 * ends; throws what the body's reader throws (a dropped connection is a TypeError in Chromium).
 * `parser` is the caller's, so that it can read `lastEventId` and `retry` after a failure.
 */
export async function* readEvents(response, parser = new SSEParser()) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");  // replaces invalid bytes with U+FFFD, as the spec asks
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
    yield* parser.feed(decoder.decode());
    parser.end();
  } finally {
    reader.releaseLock();
  }
}
