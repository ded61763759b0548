// One assistant answer on the page: its thinking (reasoning models), its Markdown, its figures, and a
// notice with a retry action when something went wrong. Built from the <template id=assistant-message>.

import { AnswerFigures } from "./figures.js";
import { StreamingMarkdown } from "./markdown-stream.js";

export class AnswerView {
  constructor(template, { onRender }) {
    this.article = template.content.firstElementChild.cloneNode(true);
    this.thinking = this.article.querySelector(".thinking");
    this.thinkingText = this.article.querySelector(".thinking-text");
    this.notice = this.article.querySelector(".notice");
    this.noticeText = this.article.querySelector(".notice-text");
    this.countdown = this.article.querySelector(".notice-countdown");
    this.retryButton = this.article.querySelector(".retry");
    this.retryButton.addEventListener("click", () => this.onRetry?.());
    this.onRender = onRender;
    this.reset();
  }

  /** Empty again, for a retry that starts the answer over. */
  reset() {
    this.markdown = new StreamingMarkdown(this.article.querySelector(".markdown"), { onRender: this.onRender });
    this.figures = new AnswerFigures(this.article);
    this.thinking.hidden = true;
    this.thinkingText.textContent = "";
    this.hideNotice();
    for (const name of ["tokens", "ttftMs", "finish", "resumes", "duplicates", "gaps"]) {
      delete this.article.dataset[name];
    }
  }

  append(kind, text) {
    if (kind === "thinking") {
      // Reasoning is plain text, folded away once the answer starts; it is not the answer's Markdown.
      this.thinking.hidden = false;
      if (!this.markdown.text) this.thinking.open = true;
      this.thinkingText.append(text);
    } else {
      if (this.thinking.open && !this.markdown.text) this.thinking.open = false;
      this.markdown.append(text);
    }
    this.figures.token();
  }

  get text() {
    return this.markdown.text;
  }

  showNotice(message, retryLabel, onRetry) {
    this.noticeText.textContent = message;  // textContent: server messages are shown, never parsed
    this.countdown.textContent = "";
    this.retryButton.textContent = retryLabel;
    this.onRetry = onRetry;
    this.notice.hidden = false;
  }

  hideNotice() {
    this.notice.hidden = true;
    this.onRetry = null;
  }

  /** Wire-level counts for anyone checking the resume logic (the e2e tests do). */
  record(stream) {
    Object.assign(this.article.dataset, {
      resumes: String(stream.resumes),
      duplicates: String(stream.duplicates),
      gaps: String(stream.gaps),
      renders: String(this.markdown.renders),
    });
  }
}
