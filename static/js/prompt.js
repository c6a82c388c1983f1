// The prompt page's live parts. Each has a no-JS path in the HTML: the compare selects are a
// GET form and the two images stand side by side, every image links to its PNG,
// previous/next are plain links.
(() => {
  "use strict";

  // The compare slider: a native range input (its role, value and keys are the browser's)
  // over the two stacked images; its value is how much of the left image shows. Without JS
  // the range stays hidden and the images stand side by side.
  function setupSlider() {
    const view = document.getElementById("compare-slider");
    const range = view?.querySelector("input.compare-range");
    if (!range) return null;
    const name = (side) => view.querySelector(`img[data-side="${side}"]`).dataset.variant;
    const update = () => {
      const value = Number(range.value);
      view.style.setProperty("--pos", `${value}%`);
      range.setAttribute("aria-valuetext", `${value}% ${name("left")}, ${100 - value}% ${name("right")}`);
    };
    const relabel = () => {
      range.setAttribute("aria-label", `Reveal: ${name("left")} vs ${name("right")}`);
      update();
    };
    range.addEventListener("input", update);
    range.hidden = false;
    view.closest(".compare").classList.add("is-slider");
    // The browser may restore the range's value on a back/forward visit.
    update();
    return { view, relabel };
  }

  // Compare: swap the slider's images in place instead of reloading the page.
  function setupCompare(slider) {
    const form = document.getElementById("compare-form");
    if (!form) return;
    if (slider) form.querySelector("button[type=submit]")?.setAttribute("hidden", "");
    form.addEventListener("change", (event) => {
      const select = event.target;
      if (!(select instanceof HTMLSelectElement)) return;
      const option = select.selectedOptions[0];
      // No slider yet, or a variant without an image: the server renders why.
      if (!slider || !option?.dataset.src) {
        form.submit();
        return;
      }
      const img = slider.view.querySelector(`img[data-side="${select.name}"]`);
      img.src = option.dataset.src;
      img.alt = option.dataset.alt;
      img.dataset.variant = option.value;
      slider.relabel();
      const label = document.querySelector(`[data-compare-label="${select.name}"]`);
      if (label) label.textContent = option.value;
      // The address and the previous/next links keep the choice, as the form would.
      const here = new URL(location.href);
      here.searchParams.set(select.name, option.value);
      history.replaceState(history.state, "", here);
      for (const link of document.querySelectorAll("a[data-key-nav]")) {
        const url = new URL(link.href);
        url.searchParams.set(select.name, option.value);
        link.href = url.toString();
      }
    });
  }

  // Other small forms (the seed) apply on change.
  function setupAutosubmit() {
    for (const form of document.querySelectorAll("form[data-autosubmit]")) {
      form.querySelector("button[type=submit]")?.setAttribute("hidden", "");
      form.addEventListener("change", () => form.submit());
    }
  }

  // Lightbox: a modal <dialog>, so Esc closes it and focus stays inside while open.
  function setupLightbox() {
    const dialog = document.getElementById("lightbox");
    if (!dialog || typeof dialog.showModal !== "function") return;
    const img = document.createElement("img");
    dialog.querySelector(".lightbox-body").append(img);
    const caption = dialog.querySelector(".lightbox-caption");
    document.addEventListener("click", (event) => {
      const link = event.target instanceof Element && event.target.closest("a.zoom");
      // A modified click keeps its meaning (open the PNG in a new tab, save it, ...).
      if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      const thumb = link.querySelector("img");
      img.src = link.href;
      img.alt = thumb ? thumb.alt : "";
      caption.textContent = link.dataset.caption || "";
      dialog.showModal();
    });
    // A click anywhere (the image, the backdrop) closes it, like the Esc key.
    dialog.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => img.removeAttribute("src"));
  }

  // ← / k: previous prompt, → / j: next. Not while typing, not in a dialog, and not when the
  // slider (an input) has focus: it moves its divider with the arrow keys.
  function setupKeys() {
    const keys = { ArrowLeft: "prev", k: "prev", ArrowRight: "next", j: "next" };
    document.addEventListener("keydown", (event) => {
      if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
      const which = keys[event.key];
      if (!which) return;
      const target = event.target;
      if (
        target instanceof Element &&
        (target.closest("input, select, textarea, [contenteditable]") ||
          target.isContentEditable)
      ) return;
      if (document.querySelector("dialog[open]")) return;
      const link = document.querySelector(`a[data-key-nav="${which}"]`);
      if (!link) return;
      event.preventDefault();
      location.assign(link.href);
    });
  }

  setupCompare(setupSlider());
  setupAutosubmit();
  setupLightbox();
  setupKeys();
})();
