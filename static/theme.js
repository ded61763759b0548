// Light and dark themes. By default the page follows the system (prefers-color-scheme, in CSS); the
// toggle pins light or dark and remembers it in localStorage, or goes back to following the system.
// A classic script in <head>, not a module: it must set the theme before the first paint.
(() => {
  const KEY = "llmstream.theme";
  const ORDER = ["system", "light", "dark"];
  const root = document.documentElement;

  function stored() {
    try {
      const value = localStorage.getItem(KEY);
      return ORDER.includes(value) ? value : "system";
    } catch {
      return "system";  // storage can be disabled; the theme then just follows the system
    }
  }

  function apply(choice) {
    if (choice === "system") delete root.dataset.theme;
    else root.dataset.theme = choice;
  }

  apply(stored());

  function effective() {
    return root.dataset.theme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  }

  const ICONS = { system: "◐ Auto", light: "☀ Light", dark: "☾ Dark" };

  function label(button) {
    const choice = stored();
    button.textContent = ICONS[choice];
    const described = choice === "system" ? `following the system, ${effective()} now` : choice;
    button.setAttribute("aria-label", `Colour theme: ${described}. Change it`);
    button.title = button.getAttribute("aria-label");
  }

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    label(button);
    button.addEventListener("click", () => {
      // From "system" go to the opposite of what shows now, so that the first click always changes it.
      const current = stored();
      const next = current === "system" ? (effective() === "dark" ? "light" : "dark")
        : current === "light" ? "dark" : "system";
      try {
        if (next === "system") localStorage.removeItem(KEY);
        else localStorage.setItem(KEY, next);
      } catch {
        // not remembered, but still applied
      }
      apply(next);
      label(button);
    });
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => label(button));
  });
})();
