// Keyboard-first annotation: number keys choose, Enter submits, s skips.
// Typing in a text box is never hijacked.
(function () {
  "use strict";
  const KEYS = { "1": "left", "2": "right", "0": "tie", "3": "both_bad" };

  function startClock() {
    const form = document.getElementById("judgment-form");
    if (form && !form.dataset.started) form.dataset.started = String(Date.now());
  }

  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"));
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.id === "judgment-form" && form.dataset.started) {
      form.elements["time_spent_ms"].value = String(Date.now() - Number(form.dataset.started));
    }
  }, true);

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const form = document.getElementById("judgment-form");
    if (!form) return;
    if (KEYS[event.key]) {
      const input = form.querySelector('input[name="choice"][value="' + KEYS[event.key] + '"]');
      if (input) { input.checked = true; input.focus(); event.preventDefault(); }
    } else if (event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "s") {
      const skip = document.getElementById("skip-form");
      if (skip) { event.preventDefault(); skip.requestSubmit(); }
    }
  });

  document.addEventListener("DOMContentLoaded", startClock);
  document.body.addEventListener("htmx:afterSwap", startClock);
})();
