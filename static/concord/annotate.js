// Keyboard-first annotation. Number keys choose, q/w/e set strength, r focuses the rationale,
// Enter submits, s skips, ? toggles help. Typing in a text box is never hijacked (Esc leaves it).
(function () {
  "use strict";
  const CHOICE_KEYS = { "1": "left", "2": "right", "0": "tie", "3": "both_bad" };
  const STRENGTH_KEYS = { q: "slight", w: "clear", e: "strong" };

  function startClock() {
    const form = document.getElementById("judgment-form");
    if (form && !form.dataset.started) form.dataset.started = String(Date.now());
  }

  function typing(target) {
    if (!target) return false;
    if (target.tagName === "TEXTAREA" || target.isContentEditable) return true;
    return target.tagName === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(target.type);
  }

  function pick(form, name, value) {
    const input = form.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (input) { input.checked = true; input.focus(); }
    return Boolean(input);
  }

  function toggleHelp() {
    const dialog = document.getElementById("help-dialog");
    if (!dialog) return;
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.id === "judgment-form" && form.dataset.started) {
      form.elements["time_spent_ms"].value = String(Date.now() - Number(form.dataset.started));
    }
  }, true);

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-help-open]")) toggleHelp();
  });

  document.addEventListener("keydown", function (event) {
    const form0 = document.getElementById("judgment-form");
    if (form0 && form0.dataset.kind === "correction" && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form0.requestSubmit();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "?") { event.preventDefault(); toggleHelp(); return; }
    const dialog = document.getElementById("help-dialog");
    if (dialog && dialog.open) return;
    const next = document.getElementById("next-link");
    if (next && (event.key === "n" || event.key === "Enter")) { event.preventDefault(); next.click(); return; }
    const form = document.getElementById("judgment-form");
    if (!form) return;
    if (form.dataset.kind === "correction") {
      if (event.key === "c") { event.preventDefault(); form.elements["correction"].focus(); }
      else if (event.key === "r") { event.preventDefault(); form.elements["rationale"].focus(); }
      else if (event.key === "s") {
        const skip = document.getElementById("skip-form");
        if (skip) { event.preventDefault(); skip.requestSubmit(); }
      }
      return;  // a plain Enter never submits a correction by accident
    }
    if (form.dataset.kind === "best_of_n" && /^Digit[1-9]$/.test(event.code)) {
      // Best-of-N: a number picks the best, Shift+number the worst.
      if (pick(form, event.shiftKey ? "worst" : "best", event.code.slice(5))) event.preventDefault();
      return;
    }
    if (CHOICE_KEYS[event.key]) {
      if (pick(form, "choice", CHOICE_KEYS[event.key])) event.preventDefault();
    } else if (STRENGTH_KEYS[event.key]) {
      if (pick(form, "strength", STRENGTH_KEYS[event.key])) event.preventDefault();
    } else if (event.key === "r") {
      event.preventDefault();
      form.elements["rationale"].focus();
    } else if (event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "s") {
      const skip = document.getElementById("skip-form");
      if (skip) { event.preventDefault(); skip.requestSubmit(); }
    }
  });

  document.addEventListener("DOMContentLoaded", startClock);
  document.addEventListener("htmx:afterSwap", function () {
    startClock();
    const first = document.querySelector('#judgment-form input[name="choice"]');
    if (first) first.focus({ preventScroll: true });
  });
})();
