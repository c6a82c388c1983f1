// The gallery's live parts, on top of htmx. Without JS (or without htmx) the filter form is a
// GET form and the pager's links page through; nothing here is needed to reach a prompt.
(() => {
  "use strict";

  // One short sentence in the polite live region, instead of the swapped results themselves.
  function announce(text) {
    const region = document.getElementById("gallery-status");
    if (!region || !text) return;
    // Emptied first, so that the same sentence twice in a row is still a change to announce.
    region.textContent = "";
    setTimeout(() => { region.textContent = text; }, 50);
  }

  // With htmx, the pager's "Next" link gives way to the "Load more" button (same URL; the
  // button appends the rows instead of opening the next page).
  function enhancePager() {
    const pager = document.getElementById("load-more");
    const button = pager?.querySelector("button.load-more");
    if (!button || !window.htmx) return;
    button.hidden = false;
    pager.querySelector("a[rel=next]")?.setAttribute("hidden", "");
  }

  // The last row before "Load more" swapped the pager: the rows after it are the new ones.
  let lastRowBeforeLoad = null;

  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    if (target?.id === "load-more") lastRowBeforeLoad = target.previousElementSibling;
  });

  // afterSettle fires once per swapped element; the first one after "Load more" handles it.
  document.addEventListener("htmx:afterSettle", (event) => {
    const target = event.detail.target;
    if (target?.id === "load-more" && lastRowBeforeLoad) {
      const firstNew = lastRowBeforeLoad.nextElementSibling;
      lastRowBeforeLoad = null;
      // Focus would fall to <body> with the button gone, and the next Tab to the top of the
      // page: it goes to the first new prompt instead, where reading goes on.
      firstNew?.matches("article.prompt-row") && firstNew.querySelector("a[href]")?.focus();
      announce(document.getElementById("load-more")?.dataset.announce);
    } else if (target?.id === "results") {
      announce(document.getElementById("results")?.dataset.announce);
    }
  });

  // A failed "Load more" leaves the button where it was: say so, and keep focus on it.
  document.addEventListener("htmx:afterRequest", (event) => {
    const source = event.detail.elt;
    if (event.detail.successful || !source?.matches?.("button.load-more")) return;
    lastRowBeforeLoad = null;
    announce("Loading more prompts failed. Try again.");
    source.focus();
  });

  document.addEventListener("htmx:load", enhancePager);
  enhancePager();
})();
