// The arena's live parts. Without JS the vote buttons post the form, the server redirects to
// the reveal page, and "Next" is a plain link; htmx swaps the stage in place instead, and
// this file adds the keyboard, focus, and the display of refusals (expired, rate limit).
(() => {
  "use strict";

  const VOTE_KEYS = {
    ArrowLeft: "left", 1: "left",
    ArrowRight: "right", 2: "right",
    ArrowDown: "tie", 3: "tie", t: "tie",
    b: "both_bad", 4: "both_bad",
  };

  function stage() {
    return document.getElementById("arena-stage");
  }

  // ← 1: left · → 2: right · ↓ 3 t: tie · b 4: both bad · n (or Enter): next matchup.
  // Not while typing, not with a modifier (browser shortcuts), not on auto-repeat (a held key
  // must not vote twice).
  function onKeydown(event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.repeat) return;
    const target = event.target;
    if (
      target instanceof Element &&
      (target.closest("input, select, textarea, [contenteditable]") || target.isContentEditable)
    ) return;
    const current = stage();
    if (!current) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;

    const form = current.querySelector("form.arena-form");
    if (form) {
      const outcome = VOTE_KEYS[key];
      if (!outcome) return;
      event.preventDefault();
      // hx-sync drops a second request anyway; this also spares the button's pressed look.
      if (form.classList.contains("htmx-request")) return;
      form.querySelector(`button[name="outcome"][value="${outcome}"]`)?.click();
      return;
    }
    // Enter on a focused link or button already activates it.
    const onControl = target instanceof Element && target.closest("a, button");
    if (key === "n" || (key === "Enter" && !onControl)) {
      const next = current.querySelector("a.arena-next");
      if (!next) return;
      event.preventDefault();
      next.click();
    }
  }

  // A refusal (expired or replayed matchup, too many votes) comes back as a 4xx stage fragment
  // with its reason and a "new matchup" link: show it, where htmx would drop a 4xx by default.
  function onBeforeSwap(event) {
    const { xhr, target } = event.detail;
    if (target && target.id === "arena-stage" && xhr.status >= 400 && xhr.status < 500) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  }

  // After a swap the old focus is gone: focus "Next" (htmx honours its autofocus) or else the
  // stage itself, so the keys keep working and a screen reader reads the new content.
  function onAfterSettle() {
    const current = stage();
    if (!current || current.contains(document.activeElement)) return;
    const autofocus = current.querySelector("[autofocus]");
    (autofocus || current).focus({ preventScroll: true });
  }

  document.addEventListener("keydown", onKeydown);
  document.addEventListener("htmx:beforeSwap", onBeforeSwap);
  document.addEventListener("htmx:afterSettle", onAfterSettle);
})();
