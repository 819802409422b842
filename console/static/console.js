/* Sextant review console: keyboard shortcuts. No inline script anywhere;
 * every action also works without this file.
 *   j / k  next / previous update in the queue
 *   a      approve the selected update (or the one on its own page)
 *   m      modify it       r  reject it       ?  show or hide the list
 */
(function () {
  "use strict";

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function items() {
    return Array.prototype.slice.call(document.querySelectorAll(".queue .item"));
  }

  function current() {
    return document.querySelector(".queue .item.selected");
  }

  function select(item) {
    items().forEach(function (other) { other.classList.remove("selected"); });
    if (item) {
      item.classList.add("selected");
      item.focus();
      item.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    var all = items();
    if (all.length === 0) { return; }
    var at = all.indexOf(current());
    var next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
    select(all[next]);
  }

  function toggleHelp() {
    var help = document.getElementById("shortcuts");
    var toggle = document.getElementById("shortcuts-toggle");
    if (!help) { return; }
    help.hidden = !help.hidden;
    if (toggle) { toggle.setAttribute("aria-expanded", String(!help.hidden)); }
  }

  function approve() {
    var scope = current() || document;
    var form = scope.querySelector("form.approve-form");
    if (form) { form.requestSubmit ? form.requestSubmit() : form.submit(); }
  }

  function goTo(part) {
    var item = current();
    if (item && item.dataset.href) {
      window.location.assign(item.dataset.href + "#" + part);
      return;
    }
    var field = part === "reject"
      ? document.getElementById("reason")
      : document.querySelector("#modify input[type=text]");
    if (field) { field.focus(); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) { return; }
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "a": approve(); break;
      case "m": goTo("modify"); break;
      case "r": goTo("reject"); break;
      case "?": toggleHelp(); break;
      default: return;
    }
    event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("shortcuts-toggle");
    if (toggle) { toggle.addEventListener("click", toggleHelp); }
  });
})();
