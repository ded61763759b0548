// The settings panel: what each request asks for (model, seed, max tokens, speed, faults), kept in
// localStorage so that a reload keeps the reader's choices.

const KEY = "llmstream.settings";
const FIELDS = ["model", "seed", "max_tokens", "tokens_per_s", "ttft_ms", "faults"];
const NUMBERS = new Set(["seed", "max_tokens", "tokens_per_s", "ttft_ms"]);
const INTEGERS = new Set(["seed", "max_tokens"]);

export class SettingsPanel {
  constructor(form) {
    this.form = form;
    this.defaults = this.#values();
    this.#restore();
    this.#describeModel();
    form.addEventListener("input", () => this.#save());
    form.addEventListener("change", () => {
      this.#save();
      this.#describeModel();
    });
    form.addEventListener("submit", (event) => event.preventDefault());
  }

  #describeModel() {
    const select = this.form.elements.model;
    const help = document.getElementById(select.getAttribute("aria-describedby"));
    help.textContent = select.selectedOptions[0]?.dataset.description ?? "";
  }

  #values() {
    return Object.fromEntries(FIELDS.map((name) => [name, this.form.elements[name].value]));
  }

  #restore() {
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(KEY) || "{}") || {};
    } catch {
      saved = {};
    }
    for (const name of FIELDS) {
      if (typeof saved[name] === "string") this.form.elements[name].value = saved[name];
    }
    // A stored model that no longer exists leaves the select empty: fall back to the default.
    if (!this.form.elements.model.value) this.form.elements.model.value = this.defaults.model;
  }

  #save() {
    try {
      localStorage.setItem(KEY, JSON.stringify(this.#values()));
    } catch {
      // storage disabled: the settings still apply to this page
    }
  }

  reset() {
    for (const name of FIELDS) this.form.elements[name].value = this.defaults[name];
    this.#save();
    this.#describeModel();
  }

  /** The request options, without the messages. A seed is always sent: resuming needs the same one. */
  options() {
    const options = {};
    for (const [name, raw] of Object.entries(this.#values())) {
      const value = raw.trim();
      if (value === "") continue;
      if (NUMBERS.has(name)) {
        const number = Number(value);
        if (!Number.isFinite(number)) continue;
        options[name] = INTEGERS.has(name) ? Math.trunc(number) : number;
      } else {
        options[name] = value;
      }
    }
    if (!("seed" in options)) options.seed = randomSeed();
    return options;
  }

  get fixedSeed() {
    return this.form.elements.seed.value.trim() !== "";
  }
}

export function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
