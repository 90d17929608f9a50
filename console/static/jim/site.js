/* Every admin and console page: a table wider than its box scrolls inside it (site.css),
   and a keyboard user must be able to reach it to scroll it (WCAG 2.1.1, axe-core's
   "scrollable-region-focusable"). A box that scrolls gets tabindex="0"; one that no
   longer does (a wider window, a narrower table after an HTMX swap) loses it. */
(function () {
  "use strict";

  var BOXES = "#content table, #changelist .results, .inline-group .tabular fieldset.module, .jim-scroll";

  function mark() {
    document.querySelectorAll(BOXES).forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      if (scrolls && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.dataset.jimScrolls = "";
      } else if (!scrolls && "jimScrolls" in box.dataset) {
        box.removeAttribute("tabindex");
        delete box.dataset.jimScrolls;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", mark);
  window.addEventListener("resize", mark);
  document.addEventListener("htmx:afterSettle", mark);
})();
