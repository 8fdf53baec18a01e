// callqual UI: keyboard navigation (the only script besides htmx; no inline scripts, see the CSP).
// - Rows with data-href and ladder arrows (.msg) are focusable: ArrowUp/ArrowDown move focus
//   within their table or ladder; Enter opens a row's link, Enter or Space on an arrow fires
//   "activate", which the arrow's hx-trigger loads into the raw-message panel.
// - Evidence links on the call page also focus and select their ladder arrow.
(function () {
  "use strict";

  function siblings(el) {
    if (el.classList.contains("msg")) {
      return Array.from(el.ownerSVGElement.querySelectorAll(".msg"));
    }
    var body = el.closest("tbody");
    return body ? Array.from(body.querySelectorAll("tr[tabindex]")) : [];
  }

  function select(arrow) {
    document.querySelectorAll(".msg.selected").forEach(function (a) { a.classList.remove("selected"); });
    arrow.classList.add("selected");
  }

  document.addEventListener("keydown", function (event) {
    var el = event.target;
    if (!(el instanceof Element)) { return; }
    var isArrow = el.classList.contains("msg");
    var isRow = el.matches("tr[tabindex]");
    if (!isArrow && !isRow) { return; }
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      var list = siblings(el);
      var next = list[list.indexOf(el) + (event.key === "ArrowDown" ? 1 : -1)];
      if (next) { next.focus(); event.preventDefault(); }
    } else if (event.key === "Enter" || (isArrow && event.key === " ")) {
      if (isArrow) {
        select(el);
        el.dispatchEvent(new CustomEvent("activate", { bubbles: true }));
        event.preventDefault();
      } else if (el.dataset.href && event.target === el) {
        window.location.assign(el.dataset.href);
      }
    }
  });

  // The live feeds' status: "live" while the event stream is open, "reconnecting" when it drops
  // (the SSE extension reconnects by itself, from the cursor the page was rendered at).
  function liveStatus(text, state) {
    document.querySelectorAll("[data-live-status]").forEach(function (el) { el.textContent = text; });
    document.body.dataset.live = state;
  }
  document.addEventListener("htmx:sseOpen", function () { liveStatus("live", "open"); });
  document.addEventListener("htmx:sseError", function () { liveStatus("reconnecting…", "error"); });

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    var arrow = target && target.closest(".msg");
    if (arrow) { select(arrow); arrow.focus(); return; }
    var link = target && target.closest("[data-focus]");
    if (link) {
      var a = document.getElementById(link.dataset.focus);
      if (a) { select(a); a.focus(); }
    }
  });
})();
