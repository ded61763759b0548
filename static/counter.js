// The counter demo: EventSource, with resume after a drop.
// EventSource reconnects by itself after a network error and sends Last-Event-ID then. A *new*
// EventSource does not, so after a deliberate drop we resume with ?from=<last id> instead.
const streamUrl = "/demo/counter/stream";
const countEl = document.getElementById("count");
const statusEl = document.getElementById("status");
const logEl = document.getElementById("log");
let source = null;
let lastId = "";

function log(text) {
  const item = document.createElement("li");
  item.textContent = text;  // textContent, never innerHTML: nothing from the wire is executed
  logEl.prepend(item);
  while (logEl.children.length > 20) logEl.lastElementChild.remove();
}

function connect() {
  const url = lastId ? `${streamUrl}?from=${encodeURIComponent(lastId)}` : streamUrl;
  source = new EventSource(url);
  statusEl.textContent = "connecting";
  source.addEventListener("open", () => { statusEl.textContent = "open"; });
  source.addEventListener("count", (event) => {
    lastId = event.lastEventId;
    countEl.textContent = JSON.parse(event.data).n;
    log(`count ${countEl.textContent} (id ${lastId})`);
  });
  source.addEventListener("close", (event) => {
    const info = JSON.parse(event.data);
    log(`server closed the stream: ${info.reason}; the browser reconnects by itself`);
  });
  source.addEventListener("done", () => {
    statusEl.textContent = "done";
    source.close();
  });
  source.addEventListener("error", (event) => {
    if (event instanceof MessageEvent) {
      // A server-sent event named "error" (the stream failed), not a connection error.
      log(`stream error: ${JSON.parse(event.data).error.message}`);
      source.close();
      statusEl.textContent = "failed";
      return;
    }
    statusEl.textContent = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting";
  });
}

document.getElementById("drop").addEventListener("click", () => {
  source.close();
  log(`dropped after id ${lastId || "none"}; resuming`);
  connect();
});
document.getElementById("stop").addEventListener("click", () => {
  source.close();
  statusEl.textContent = "stopped";
});
connect();
