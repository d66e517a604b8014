// Gantry's few lines of JavaScript: keep the live log pinned to the bottom
// while the reader is there, and retry a log poll that failed.
(function () {
  "use strict";
  let pinned = true;
  window.addEventListener("scroll", function () {
    pinned = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (pinned && document.getElementById("log")) {
      window.scrollTo(0, document.body.scrollHeight);
    }
  });
  function retryLater(event) {
    const elt = event.detail.elt;
    if (elt && elt.id === "log-poll") {
      setTimeout(function () { htmx.trigger(elt, "retry"); }, 2000);
    }
  }
  document.addEventListener("htmx:responseError", retryLater);
  document.addEventListener("htmx:sendError", retryLater);
})();
// Buttons with data-confirm ask before submitting their form.
document.addEventListener("click", function (event) {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});
