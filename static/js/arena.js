// The arena's live parts. Without JS the vote buttons post the form, the server redirects to
// the reveal page (or answers a refusal page), and "Next" is a plain link; htmx swaps the
// stage in place instead, and this file adds the keyboard shortcuts (and their switch),
// focus, a sentence for screen readers after each swap, and the display of failed votes.
(() => {
  "use strict";

  const STORAGE_KEY = "flux-playground.arena-shortcuts";
  const VOTE_KEYS = {
    ArrowLeft: "left", 1: "left",
    ArrowRight: "right", 2: "right",
    t: "tie", 3: "tie",
    b: "both_bad", 4: "both_bad",
  };
  // What a focused link or button does with a key itself: Enter and Space activate (Space
  // scrolls on a link), the arrows and page keys scroll. Those keys are theirs, never a vote.
  const LINK_KEYS = new Set(["Enter", " ", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End"]);
  const BUTTON_KEYS = new Set(["Enter", " "]);

  let enabled = readSetting();

  function stage() {
    return document.getElementById("arena-stage");
  }

  // On unless the visitor turned them off (localStorage may be unavailable: then on, for
  // this page only).
  function readSetting() {
    try {
      return localStorage.getItem(STORAGE_KEY) !== "off";
    } catch {
      return true;
    }
  }

  function saveSetting(on) {
    try {
      localStorage.setItem(STORAGE_KEY, on ? "on" : "off");
    } catch {
      // Not remembered; the switch still works on this page.
    }
  }

  // The hints (CSS, from data-shortcuts) and aria-keyshortcuts follow the switch: a screen
  // reader must not announce keys that do nothing.
  function applySetting() {
    const arena = document.querySelector("section.arena");
    if (!arena) return;
    arena.dataset.shortcuts = enabled ? "on" : "off";
    for (const el of arena.querySelectorAll("[data-keys]")) {
      if (enabled) el.setAttribute("aria-keyshortcuts", el.dataset.keys);
      else el.removeAttribute("aria-keyshortcuts");
    }
  }

  function setUpSwitch() {
    const toggle = document.getElementById("arena-shortcuts");
    if (!toggle) return;
    toggle.checked = enabled;
    toggle.addEventListener("change", () => {
      enabled = toggle.checked;
      saveSetting(enabled);
      applySetting();
    });
    toggle.closest(".arena-keys").hidden = false;
    applySetting();
  }

  // Whether the focused element uses this key itself (typing, activating, scrolling).
  function usedByFocus(target, key) {
    if (target.closest("input, select, textarea, [contenteditable]") || target.isContentEditable) return true;
    if (target.closest("a[href], [role=link]")) return LINK_KEYS.has(key);
    if (target.closest("button, summary, [role=button]")) return BUTTON_KEYS.has(key);
    return false;
  }

  // ← 1: left · → 2: right · t 3: tie · b 4: both bad · n (or Enter): next matchup. Only
  // while the shortcuts are on and the focus is in the stage (WCAG 2.1.4: a key typed
  // elsewhere, or meant for the focused control, is never a vote); not with a modifier
  // (browser shortcuts), not on auto-repeat (a held key must not vote twice). ↓ is not one:
  // it scrolls, wherever the focus is.
  function onKeydown(event) {
    if (!enabled || event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.repeat) return;
    const current = stage();
    const target = event.target;
    if (!current || !(target instanceof Element) || !current.contains(target)) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (usedByFocus(target, key)) return;

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
    if (key === "n" || key === "Enter") {
      const next = current.querySelector("a.arena-next");
      if (!next) return;
      event.preventDefault();
      next.click();
    }
  }

  // One sentence for screen readers. Emptied first: the same sentence twice in a row (two
  // failures) is a change, and is read again.
  function announce(text) {
    const live = document.getElementById("arena-live");
    if (!live) return;
    live.textContent = "";
    setTimeout(() => {
      live.textContent = text;
    }, 50);
  }

  function sentence(text) {
    return text.trim().replace(/[.;:\s]+$/, "");
  }

  function isVote(detail) {
    return detail.requestConfig?.verb === "post";
  }

  // A refused vote (expired or replayed matchup, another rater's, too many votes) as one
  // sentence: what happened and what to do.
  function refusal(status, reason) {
    const what = { 409: "this pair was already answered", 410: "this pair expired" }[status] || sentence(reason);
    const todo = status === 429 ? "wait a minute, then load a new pair" : "load a new pair to go on";
    return `Vote not saved: ${what}; ${todo}.`;
  }

  // A failure with no arena answer to swap in (a 5xx, an error page, no network): the stage
  // stays as it was, with the message under its controls; the same buttons retry.
  function showFailure(detail, why) {
    const current = stage();
    if (!current) return;
    const text = isVote(detail)
      ? `Vote not saved: ${why}; try again.`
      : `No new pair loaded: ${why}; try again.`;
    let failure = current.querySelector(".arena-failure");
    if (!failure) {
      failure = document.createElement("p");
      failure.className = "arena-failure";
      const anchor = current.querySelector(".arena-buttons") || detail.elt?.closest("p") || current.lastElementChild;
      anchor.after(failure);
    }
    failure.textContent = text;
    announce(text);
  }

  function onBeforeRequest(event) {
    const current = stage();
    if (current && current.contains(event.detail.elt)) current.querySelector(".arena-failure")?.remove();
  }

  // A refusal comes back as a 4xx stage fragment with its reason and a "new matchup" link:
  // show it, where htmx would drop a 4xx by default. Anything else that failed keeps the
  // stage and says so.
  function onBeforeSwap(event) {
    const { xhr, target } = event.detail;
    if (!target || target.id !== "arena-stage" || xhr.status < 400) return;
    const fragment = xhr.status < 500 && /\bid="arena-stage"/.test(xhr.responseText);
    if (fragment) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      return;
    }
    showFailure(event.detail, `the server answered with error ${xhr.status}`);
  }

  function onSendError(event) {
    if (stage()?.contains(event.detail.elt)) showFailure(event.detail, "the server could not be reached");
  }

  // After a swap the old focus is gone: focus "Next" (htmx honours its autofocus) or else the
  // stage itself, so the keys keep working; then say in one sentence what happened. At the
  // swap, not at the settle 20 ms later: no key typed in between lands outside the stage.
  function onAfterSwap(event) {
    const current = stage();
    if (!current || event.target !== current) return;
    applySetting();
    if (!current.contains(document.activeElement)) {
      const autofocus = current.querySelector("[autofocus]");
      (autofocus || current).focus({ preventScroll: true });
    }
    const state = current.dataset.state;
    if (state === "reveal") {
      const outcome = current.querySelector(".arena-result strong")?.textContent || "";
      announce(`Vote saved: ${outcome}.`);
    } else if (state === "matchup") {
      announce("New pair loaded.");
    } else {
      const message = current.querySelector(".arena-message");
      const reason = message?.querySelector(".reason")?.textContent || "";
      const status = Number(message?.dataset.status);
      announce(isVote(event.detail) ? refusal(status, reason) : `No new pair: ${sentence(reason)}.`);
    }
  }

  setUpSwitch();
  document.addEventListener("keydown", onKeydown);
  document.addEventListener("htmx:beforeRequest", onBeforeRequest);
  document.addEventListener("htmx:beforeSwap", onBeforeSwap);
  document.addEventListener("htmx:sendError", onSendError);
  document.addEventListener("htmx:afterSwap", onAfterSwap);
})();
