// Auto-scroll that respects the reader: the view follows a streaming answer only while the reader is
// at the bottom. Scrolling up to reread stops the following (and shows "Jump to latest"); coming back
// to the bottom, by hand or with the button, starts it again. Growing content fires no scroll event,
// so `following` changes only when the reader (or we) scroll.

const SLACK_PX = 48;  // "at the bottom" within this distance: a line of text, rounding, a fast wheel

export class FollowScroll {
  constructor(container, jumpButton) {
    this.container = container;
    this.jump = jumpButton;
    this.following = true;
    container.addEventListener("scroll", () => {
      this.following = this.#atBottom();
      if (this.following) this.jump.hidden = true;
    }, { passive: true });
    jumpButton.addEventListener("click", () => {
      this.following = true;
      this.update();
      this.container.focus({ preventScroll: true });
    });
  }

  #atBottom() {
    const c = this.container;
    return c.scrollHeight - c.scrollTop - c.clientHeight <= SLACK_PX;
  }

  /** After new content: stay at the bottom if following, else offer the way down. */
  update() {
    if (this.following) {
      this.container.scrollTop = this.container.scrollHeight;
      this.jump.hidden = true;
    } else {
      this.jump.hidden = this.#atBottom();
    }
  }

  /** A new message the reader asked for (they just sent one): follow again. */
  follow() {
    this.following = true;
    this.update();
  }
}
