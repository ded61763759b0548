// The live figures under an answer: a running timer while the model "thinks" before its first token,
// then time to first token, tokens per second, token count, and finally why the answer ended.
// Measured here, in the browser, from the moment the request left: what a user waits, network included.
// Updated at most once per frame and never announced (the figures are not a live region).

const TICK_MS = 100;

export class AnswerFigures {
  constructor(root) {
    this.root = root;
    this.status = root.querySelector(".fig-status");
    this.fig = Object.fromEntries(
      [...root.querySelectorAll("[data-fig]")].map((el) => [el.dataset.fig, el]),
    );
    this.tokens = 0;
    this.sentAt = 0;
    this.firstAt = 0;
    this.lastAt = 0;
    this.timer = 0;
    this.frame = 0;
  }

  start(seed) {
    this.sentAt = performance.now();
    this.#show("seed", String(seed));
    this.#setStatus("waiting", "Waiting 0.0 s");
    this.timer = setInterval(() => {
      if (!this.firstAt) this.#setStatus("waiting", `Waiting ${((performance.now() - this.sentAt) / 1000).toFixed(1)} s`);
    }, TICK_MS);
  }

  token() {
    const now = performance.now();
    if (!this.firstAt) {
      this.firstAt = now;
      clearInterval(this.timer);
      this.#show("ttft", formatMs(now - this.sentAt));
      this.root.dataset.ttftMs = String(Math.round(now - this.sentAt));
      this.#setStatus("streaming", "Streaming");
    }
    this.lastAt = now;
    this.tokens++;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.#render());
  }

  reconnecting(attempt) {
    this.#setStatus("reconnecting", `Connection lost, resuming (attempt ${attempt})`);
  }

  streaming() {
    if (this.firstAt) this.#setStatus("streaming", "Streaming");
  }

  /** The answer ended: `state` is done, stopped, error or lost; `finishReason` when the server said. */
  end(state, label, finishReason) {
    clearInterval(this.timer);
    this.#render();
    if (finishReason) this.#show("finish", finishReason);
    this.root.dataset.finish = finishReason || "";
    this.#setStatus(state, label);
  }

  #render() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (!this.tokens) return;
    this.#show("tokens", String(this.tokens));
    this.root.dataset.tokens = String(this.tokens);
    const seconds = (this.lastAt - this.firstAt) / 1000;
    // A rate needs two tokens and some time between them; "–" is more honest than Infinity.
    this.#show("rate", this.tokens > 1 && seconds > 0 ? ((this.tokens - 1) / seconds).toFixed(1) : "–");
  }

  #show(name, text) {
    const el = this.fig[name];
    el.querySelector("b").textContent = text;
    el.hidden = false;
  }

  #setStatus(state, label) {
    this.root.dataset.state = state;
    this.status.textContent = label;
  }
}

function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
