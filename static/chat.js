// The chat page: the conversation, the composer and the controls, wired to one AnswerStream per answer.
//
//   composer ─► turn {user text, request body} ─► AnswerStream (fetch POST, SSE, resume) ─► AnswerView
//
// History is sent as `messages`; each answer keeps its own request body, so that resuming or retrying
// it asks for exactly the same stream even if the settings changed meanwhile.

import { AnswerStream } from "./answer-stream.js";
import { AnswerView } from "./answer-view.js";
import { FollowScroll } from "./follow-scroll.js";
import { SettingsPanel, randomSeed } from "./settings.js";

const $ = (id) => document.getElementById(id);
const transcript = $("transcript");
const prompt = $("prompt");
const sendButton = $("send");
const stopButton = $("stop");
const dropButton = $("drop");
const regenerateButton = $("regenerate");
const announcer = $("announcer");
const settings = new SettingsPanel($("settings-form"));
const scroller = new FollowScroll(transcript, $("jump"));

const turns = [];   // {userText, body, view, stream}
let active = null;  // the turn whose answer is streaming

function setBusy(busy) {
  // Stop and Drop disappear when the answer ends: a focus left on them would fall to <body>.
  const focusWasOnControl = [stopButton, dropButton].includes(document.activeElement);
  transcript.setAttribute("aria-busy", String(busy));
  sendButton.disabled = busy;
  stopButton.hidden = !busy;
  dropButton.hidden = !busy;
  regenerateButton.disabled = busy || turns.length === 0;
  if (!busy && focusWasOnControl) prompt.focus();
}

function announce(text) {
  announcer.textContent = text;
}

function messagesBefore(index) {
  const messages = [];
  for (const turn of turns.slice(0, index)) {
    messages.push({ role: "user", content: turn.userText });
    if (turn.view.text) messages.push({ role: "assistant", content: turn.view.text });
  }
  messages.push({ role: "user", content: turns[index].userText });
  return messages;
}

function addUserMessage(text) {
  const article = $("user-message").content.firstElementChild.cloneNode(true);
  article.querySelector(".bubble").textContent = text;  // the prompt is text, never markup
  transcript.append(article);
  return article;
}

function newAnswerView() {
  const view = new AnswerView($("assistant-message"), { onRender: () => scroller.update() });
  transcript.append(view.article);
  return view;
}

function send(text) {
  if (active || !text.trim()) return;
  $("empty-state")?.remove();
  addUserMessage(text);
  const turn = { userText: text, view: newAnswerView() };
  turns.push(turn);
  prompt.value = "";
  scroller.follow();
  ask(turn, settings.options());
}

/** Start `turn`'s answer afresh with `options` (settings, seed). */
function ask(turn, options) {
  const index = turns.indexOf(turn);
  turn.body = { messages: messagesBefore(index), ...options };
  turn.view.reset();
  turn.stream = new AnswerStream(turn.body, handlersFor(turn));
  turn.view.figures.start(turn.body.seed);
  run(turn);
}

async function run(turn) {
  active = turn;
  setBusy(true);
  const { view, stream } = turn;
  view.hideNotice();
  const outcome = await stream.run();
  view.markdown.flush();
  view.record(stream);
  active = null;
  setBusy(false);
  finish(turn, outcome);
  scroller.update();
}

function handlersFor(turn) {
  const { view } = turn;
  return {
    onToken: (kind, text) => view.append(kind, text),
    onStreaming: () => view.figures.streaming(),
    onReconnecting: (attempt) => {
      view.figures.reconnecting(attempt);
      view.record(turn.stream);
    },
    onFinish: (data) => {
      turn.finishReason = data.finish_reason;
    },
    onStreamError: (data) => {
      turn.streamError = data;
    },
    onHttpError: (error) => {
      turn.httpError = error;
    },
  };
}

function finish(turn, outcome) {
  const { view, stream } = turn;
  const tokens = stream.lastIndex + 1;
  switch (outcome) {
    case "finish":
      view.figures.end("done", "Done", turn.finishReason);
      announce(`Answer finished: ${tokens} tokens, finish reason ${turn.finishReason}.`);
      break;
    case "stopped":
      view.figures.end("stopped", "Stopped");
      announce("Stopped.");
      break;
    case "error": {
      const { code, message } = turn.streamError;
      view.figures.end("error", "Failed");
      // The server plans the same stream again and skips what is shown: retrying continues the answer.
      view.showNotice(`The answer failed after ${tokens} tokens (${code}): ${message}`,
        "Retry from here", () => resume(turn));
      announce(`Error: ${message}`);
      break;
    }
    case "lost":
      view.figures.end("error", "Connection lost");
      view.showNotice(`The connection kept dropping; gave up after ${stream.resumes} attempts to resume.`,
        "Retry from here", () => resume(turn));
      announce("Connection lost.");
      break;
    case "http_error":
      showHttpError(turn, turn.httpError);
      break;
    default:
      break;
  }
}

function showHttpError(turn, error) {
  const { view } = turn;
  view.figures.end("error", `HTTP ${error.status}`);
  const base = `HTTP ${error.status} ${error.type}: ${error.message.replace(/\.+$/, "")}`;
  const faulty = turn.body.faults ? " (fault injection is on in Settings)" : "";
  const retry = () => {
    clearInterval(countdown);
    // Settings may have changed (the fault switched off, say): ask afresh, same seed unless one is set.
    const options = settings.options();
    if (!settings.fixedSeed) options.seed = turn.body.seed;
    ask(turn, options);
  };
  let countdown = 0;
  if (error.retryAfterMs != null) {
    // Say when the server will take the request. The sentence is said once (the notice is an alert);
    // the ticking countdown beside it is hidden from screen readers. The button works at once anyway.
    const seconds = (error.retryAfterMs / 1000).toFixed(1);
    view.showNotice(`${base}. The server asks to wait ${seconds} s before retrying${faulty}.`, "Retry", retry);
    view.article.dataset.retryAfterMs = String(error.retryAfterMs);
    const until = performance.now() + error.retryAfterMs;
    const tick = () => {
      const left = Math.max(0, until - performance.now()) / 1000;
      view.countdown.textContent = left > 0 ? `(${left.toFixed(1)} s)` : "(you can retry now)";
      if (left <= 0) clearInterval(countdown);
    };
    tick();
    countdown = setInterval(tick, 100);
  } else {
    view.showNotice(`${base}${faulty}.`, "Retry", retry);
  }
  announce(`Error: ${error.message}`);
}

function resume(turn) {
  if (active) return;
  turn.view.hideNotice();
  turn.view.figures.streaming();
  run(turn);
}

function regenerate() {
  if (active || turns.length === 0) return;
  const turn = turns[turns.length - 1];
  // Another answer to the same question: a different seed (the next one when the reader fixed it).
  const options = settings.options();
  options.seed = settings.fixedSeed ? turn.body.seed + 1 : randomSeed();
  scroller.follow();
  ask(turn, options);
}

function newChat() {
  active?.stream.stop();
  turns.length = 0;
  transcript.replaceChildren();
  announce("New chat.");
  setBusy(false);
  prompt.focus();
}

// ---- controls and keys ----------------------------------------------------------------------------

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  send(prompt.value);
});

prompt.addEventListener("keydown", (event) => {
  // An IME composing (Japanese, Chinese ...) uses Enter to confirm a candidate: that Enter is not
  // "send". keyCode 229 covers browsers that end composition before the keydown arrives.
  if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  send(prompt.value);
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && active) {
    event.preventDefault();
    active.stream.stop();
  }
});

stopButton.addEventListener("click", () => active?.stream.stop());
dropButton.addEventListener("click", () => active?.stream.drop());
regenerateButton.addEventListener("click", regenerate);
$("new-chat").addEventListener("click", newChat);
$("settings-reset").addEventListener("click", () => settings.reset());

const settingsPanel = $("settings");
const settingsToggle = $("settings-toggle");
settingsToggle.addEventListener("click", () => {
  const open = settingsPanel.hidden;
  settingsPanel.hidden = !open;
  settingsToggle.setAttribute("aria-expanded", String(open));
  if (open) $("model").focus();
});

prompt.focus();
