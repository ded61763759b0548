// Markdown that renders while it streams, safely.
//
// Re-parsing and replacing the whole answer on every token makes long answers flicker, lose text
// selection and cost O(n²). Instead the source is split into blocks with marked's lexer: every block but
// the last is finished (a later token can only extend the last one), so it is rendered once and left
// alone; only the growing tail is re-rendered, at most once per animation frame.
//
// Safety, in two layers: raw HTML in the Markdown is shown as text, never parsed (marked's `html`
// renderer is replaced), and everything marked produces goes through DOMPurify before it touches the
// DOM. The page's Content-Security-Policy (script-src 'self') is the third layer.

import { Marked } from "./vendor/marked.esm.js";
import DOMPurify from "./vendor/purify.es.mjs";

const marked = new Marked({ gfm: true, breaks: false, async: false });
marked.use({
  renderer: {
    // Raw HTML from the prompt or the model is text to show, not markup to obey.
    html(token) {
      const text = escapeHtml(token.text);
      return token.block ? `<p>${text}</p>\n` : text;
    },
  },
});

const purify = DOMPurify(window);
purify.addHook("afterSanitizeAttributes", (node) => {
  // Links from a model open elsewhere and give the target no handle on this page.
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});
const PURIFY_OPTIONS = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe"],
  RETURN_DOM_FRAGMENT: true,
};

export function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Sanitized DOM for a piece of Markdown (or for tokens already lexed from it). */
export function renderMarkdown(source) {
  return purify.sanitize(marked.parse(source), PURIFY_OPTIONS);
}

function renderTokens(tokens, links) {
  const list = tokens.slice();
  list.links = links;
  return purify.sanitize(marked.parser(list), PURIFY_OPTIONS);
}

// A fenced code block is open when its raw text has no closing fence (same character, at least as long,
// indented at most 3 spaces) after the opening line.
const FENCE = /^ {0,3}(`{3,}|~{3,})/;
export function isOpenFence(token) {
  if (token.type !== "code" || token.codeBlockStyle === "indented") return false;
  const lines = token.raw.replace(/\n+$/, "").split("\n");
  const opening = FENCE.exec(lines[0]);
  if (!opening) return false;
  if (lines.length < 2) return true;
  const closing = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(lines[lines.length - 1]);
  return !(closing && closing[1][0] === opening[1][0] && closing[1].length >= opening[1].length);
}

export class StreamingMarkdown {
  /** Renders into `root` (emptied); `onRender` runs after each render, e.g. to keep the view scrolled. */
  constructor(root, { onRender = () => {} } = {}) {
    this.root = root;
    this.onRender = onRender;
    this.done = document.createElement("div");
    this.done.className = "md-done";
    this.tail = document.createElement("div");
    this.tail.className = "md-tail";
    root.replaceChildren(this.done, this.tail);
    this.source = "";
    this.committed = 0;  // source[0:committed] is rendered into `done` for good
    this.frame = 0;
    this.renders = 0;    // tail renders: a test checks they are far fewer than tokens
  }

  get text() {
    return this.source;
  }

  append(text) {
    if (!text) return;
    this.source += text;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  /** Render now rather than at the next frame (a hidden tab gets no frames; the end must show). */
  flush() {
    this.render();
  }

  render() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    const pending = this.source.slice(this.committed);
    const tokens = marked.lexer(pending);
    let last = tokens.length - 1;
    while (last >= 0 && tokens[last].type === "space") last--;
    if (last > 0) {
      // Everything before the last block is finished: render it once, for good.
      const finished = tokens.slice(0, last);
      this.done.append(renderTokens(finished, tokens.links));
      this.committed += finished.reduce((n, token) => n + token.raw.length, 0);
    }
    this.tail.replaceChildren(last >= 0 ? this.#tailFragment(tokens.slice(last), tokens.links) : "");
    this.renders++;
    this.onRender();
  }

  #tailFragment(tokens, links) {
    const [block] = tokens;
    if (isOpenFence(block)) {
      // An open fence is shown as what it will be, plain code, built with textContent: no Markdown
      // inside it is interpreted while it is still growing.
      const pre = document.createElement("pre");
      pre.className = "code-open";
      pre.dataset.open = "";
      const code = document.createElement("code");
      code.textContent = block.text;
      pre.append(code);
      return pre;
    }
    return renderTokens(tokens, links);
  }
}
