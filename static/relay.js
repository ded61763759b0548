// The relay demo: read /demo/relay/stream with fetch and the SSE parser (not EventSource, so that a
// refused upstream's 400 message can be shown) and display each relayed event as it comes.

import { readEvents } from "./sse-parser.js";

const $ = (id) => document.getElementById(id);
const form = $("relay-form");
const preset = $("preset");
const upstream = $("upstream");
const output = $("output");
const log = $("log");
const statusEl = $("status");
const countEl = $("event-count");
let controller = null;
let lastId = "";

upstream.value = preset.value;
preset.addEventListener("change", () => {
  upstream.value = preset.value;
  if (!preset.value) upstream.focus();
});

function setStatus(text) {
  statusEl.textContent = text;
  document.body.dataset.status = text.split(":")[0];
}

function logLine(text) {
  const item = document.createElement("li");
  item.textContent = text;  // textContent: relayed data is shown, never interpreted
  log.prepend(item);
  while (log.children.length > 50) log.lastElementChild.remove();
}

function show(event, count) {
  countEl.textContent = String(count);
  // The parser keeps the last id in force (as EventSource does); show it only where it changed.
  logLine(`${event.type}${event.id !== lastId ? ` #${event.id}` : ""}: ${event.data}`);
  lastId = event.id;
  let payload = null;
  try {
    payload = JSON.parse(event.data);
  } catch {
    payload = null;
  }
  if (payload && typeof payload.text === "string") {
    const chunk = document.createElement("span");
    chunk.className = "chunk";
    chunk.textContent = payload.text;
    output.append(chunk);
  } else if (event.type === "count") {
    output.textContent = `${payload.n}`;
  }
}

async function start() {
  controller?.abort();
  controller = new AbortController();
  output.replaceChildren();
  log.replaceChildren();
  lastId = "";
  countEl.textContent = "0";
  $("stop").disabled = false;
  $("start").disabled = true;
  setStatus("connecting");
  const query = new URLSearchParams({ upstream: upstream.value, transform: $("transform").value });
  try {
    const response = await fetch(`/demo/relay/stream?${query}`, { signal: controller.signal });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      setStatus(`refused: HTTP ${response.status}: ${body.error?.message ?? response.statusText}`);
      return;
    }
    setStatus("streaming");
    let count = 0;
    let ending = "ended";
    for await (const event of readEvents(response)) {
      show(event, ++count);
      if (event.type === "error") {
        const { message, error } = JSON.parse(event.data);
        ending = `error: ${message ?? error?.message}`;
      } else if (event.type === "finish" || event.type === "done") {
        ending = "done";
      }
    }
    setStatus(ending);
  } catch (error) {
    setStatus(controller.signal.aborted ? "stopped" : `failed: ${error.message}`);
  } finally {
    $("stop").disabled = true;
    $("start").disabled = false;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  start();
});
$("stop").addEventListener("click", () => controller?.abort());
