// The timeline demo: N answers stream in parallel (fetch POST + the SSE parser) and every token's
// arrival time is drawn on a canvas, one row per stream, so time to first token, pacing and stalls show
// at a glance. Drawing happens at most once per animation frame, whatever the token rate.

import { postChat } from "./chat-api.js";
import { readEvents } from "./sse-parser.js";

const $ = (id) => document.getElementById(id);
const canvas = $("timeline");
const statusEl = $("status");
const tbody = $("stats").querySelector("tbody");

const PROMPT = "Explain how token streaming works, with a short example";
const MIN_STALL_MS = 250;   // a gap is a stall when it is this long ...
const STALL_FACTOR = 5;     // ... and this many times the stream's median gap
const ROW = 30;
const LABEL_W = 78;
const AXIS_H = 26;

let lanes = [];
let t0 = 0;
let running = false;
let controller = null;
let frame = 0;

class Lane {
  constructor(index, body) {
    this.index = index;
    this.body = body;
    this.arrivals = [];  // ms since t0, one per token
    this.end = null;     // "finish", "error", "cut" or "stopped"
    this.endAt = null;
    this.detail = "";
  }

  stats() {
    const a = this.arrivals;
    const gaps = a.slice(1).map((t, i) => t - a[i]);
    const sorted = [...gaps].sort((x, y) => x - y);
    const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
    const threshold = Math.max(MIN_STALL_MS, STALL_FACTOR * median);
    return {
      ttft: a.length ? a[0] : null,
      tokens: a.length,
      rate: a.length > 1 ? ((a.length - 1) * 1000) / (a[a.length - 1] - a[0]) : null,
      longest: gaps.length ? Math.max(...gaps) : null,
      stalls: gaps.map((g, i) => [i, g]).filter(([, g]) => g >= threshold).map(([i]) => i),
    };
  }
}

function bodies(count, model, maxTokens) {
  return Array.from({ length: count }, (_, i) => {
    const faults = [];
    if (i === 1 && $("stall").checked) faults.push("stall:40:1200");
    if (i === 2 && $("slow-start").checked) faults.push("slow_first_token:800");
    const body = { messages: [{ role: "user", content: PROMPT }], model, seed: i + 1, max_tokens: maxTokens };
    if (faults.length) body.faults = faults.join(",");
    return body;
  });
}

async function runLane(lane, signal) {
  try {
    const response = await postChat(lane.body, { signal });
    for await (const event of readEvents(response)) {
      if (event.type === "token" || event.type === "thinking") {
        lane.arrivals.push(performance.now() - t0);
        schedule();
      } else if (event.type === "finish" || event.type === "error") {
        lane.end = event.type;
        lane.detail = event.type === "finish" ? JSON.parse(event.data).finish_reason : JSON.parse(event.data).message;
      }
    }
    lane.end ??= "cut";
  } catch (error) {
    lane.end = signal.aborted ? "stopped" : "error";
    lane.detail = error.message;
  }
  lane.endAt = performance.now() - t0;
  schedule();
}

async function start() {
  controller?.abort();
  controller = new AbortController();
  const count = Math.min(6, Math.max(1, Number($("count").value) || 1));
  const maxTokens = Math.max(1, Number($("max_tokens").value) || 150);
  lanes = bodies(count, $("model").value, maxTokens).map((body, i) => new Lane(i, body));
  t0 = performance.now();
  running = true;
  setRunning(true);
  statusEl.textContent = "streaming";
  schedule();
  await Promise.all(lanes.map((lane) => runLane(lane, controller.signal)));
  running = false;
  setRunning(false);
  statusEl.textContent = controller.signal.aborted ? "stopped" : "done";
  document.body.dataset.status = statusEl.textContent;
  draw();
}

function setRunning(on) {
  $("start").disabled = on;
  $("stop").disabled = !on;
  document.body.dataset.status = on ? "streaming" : "";
}

function schedule() {
  if (!frame) frame = requestAnimationFrame(draw);
}

// ---- drawing --------------------------------------------------------------------------------------

function palette() {
  // The theme's colours, resolved by CSS (light-dark() cannot be read from the variables directly).
  return Object.fromEntries(
    [...document.querySelectorAll(".swatch")].map((el) => [el.dataset.color, getComputedStyle(el).color]),
  );
}

function niceStep(span) {
  for (const step of [100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000]) {
    if (span / step <= 10) return step;
  }
  return 120000;
}

function draw() {
  cancelAnimationFrame(frame);
  frame = 0;
  const colors = palette();
  const width = canvas.parentElement.clientWidth - 16;
  const height = AXIS_H + Math.max(1, lanes.length) * ROW + 8;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, width, height);

  const now = running ? performance.now() - t0 : 0;
  const last = Math.max(now, ...lanes.map((l) => Math.max(l.endAt ?? 0, ...l.arrivals)), 1000);
  const step = niceStep(last);
  const span = Math.ceil(last / step) * step;
  const plotW = width - LABEL_W - 12;
  const x = (t) => LABEL_W + (t / span) * plotW;

  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  for (let t = 0; t <= span; t += step) {
    ctx.fillStyle = colors.grid;
    ctx.fillRect(Math.round(x(t)), AXIS_H - 4, 1, height - AXIS_H);
    ctx.fillStyle = colors.muted;
    ctx.textAlign = "center";
    ctx.fillText(step < 1000 ? `${(t / 1000).toFixed(1)} s` : `${t / 1000} s`, x(t), 10);
  }

  lanes.forEach((lane, row) => {
    const y = AXIS_H + row * ROW + ROW / 2;
    const stats = lane.stats();
    ctx.fillStyle = colors.fg;
    ctx.textAlign = "left";
    ctx.fillText(`stream ${row + 1}`, 4, y);
    // Waiting for the first token: a pale bar from the request to the first mark (or to now).
    const waitEnd = stats.ttft ?? (lane.end ? lane.endAt : now);
    ctx.fillStyle = colors.wait;
    ctx.fillRect(x(0), y - 5, x(waitEnd) - x(0), 10);
    ctx.fillStyle = colors.danger;
    for (const i of stats.stalls) {
      ctx.fillRect(x(lane.arrivals[i]), y - 3, x(lane.arrivals[i + 1]) - x(lane.arrivals[i]), 6);
    }
    ctx.fillStyle = colors.accent;
    for (const t of lane.arrivals) ctx.fillRect(Math.round(x(t)), y - 9, 1.5, 18);
    if (lane.end) {
      ctx.fillStyle = lane.end === "finish" ? colors.fg : colors.danger;
      ctx.beginPath();
      ctx.arc(x(lane.endAt), y, 4, 0, 2 * Math.PI);
      ctx.fill();
    }
  });
  renderStats();
  if (running) schedule();
}

function renderStats() {
  const fmt = (v, unit = " ms") => (v == null ? "–" : `${Math.round(v)}${unit}`);
  const rows = lanes.map((lane, i) => {
    const s = lane.stats();
    const tr = document.createElement("tr");
    Object.assign(tr.dataset, {
      tokens: String(s.tokens),
      ttftMs: String(Math.round(s.ttft ?? -1)),
      longestGapMs: String(Math.round(s.longest ?? -1)),
      stalls: String(s.stalls.length),
      end: lane.end ?? "",
    });
    const end = lane.end ? `${lane.end}${lane.detail ? `: ${lane.detail}` : ""}` : "streaming";
    for (const text of [`stream ${i + 1}${lane.body.faults ? ` (${lane.body.faults})` : ""}`, fmt(s.ttft),
      String(s.tokens), s.rate == null ? "–" : s.rate.toFixed(1), fmt(s.longest), String(s.stalls.length), end]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  tbody.replaceChildren(...rows);
}

$("timeline-form").addEventListener("submit", (event) => {
  event.preventDefault();
  start();
});
$("stop").addEventListener("click", () => controller?.abort());
// Redraw in the other theme's colours, and at a new width.
new MutationObserver(() => draw()).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => draw());
window.addEventListener("resize", () => schedule());
draw();
