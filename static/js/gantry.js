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
// Times: absolute ones in the viewer's time zone, relative ones kept current, each with the other on hover.
(function () {
  "use strict";
  const pad = function (n) { return String(n).padStart(2, "0"); };
  function local(date, shape) {
    const day = date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
    const clock = pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
    return shape === "date" ? day : shape === "time" ? clock : day + " " + clock;
  }
  function ago(date) {
    const seconds = Math.max(Math.floor((Date.now() - date.getTime()) / 1000), 0);
    if (seconds < 120) { return seconds + " s ago"; }
    if (seconds < 7200) { return Math.floor(seconds / 60) + " min ago"; }
    if (seconds < 172800) { return Math.floor(seconds / 3600) + " h ago"; }
    return Math.floor(seconds / 86400) + " days ago";
  }
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  function render(root) {
    absolute(root);
    relative(root);
  }
  function absolute(root) {
    root.querySelectorAll("time[data-at]").forEach(function (node) {
      const date = new Date(node.getAttribute("datetime"));
      if (isNaN(date)) { return; }
      node.textContent = local(date, node.dataset.at);
      node.title = local(date, "datetime") + " " + zone;
    });
  }
  function relative(root) {
    root.querySelectorAll("time[data-ago]").forEach(function (node) {
      const date = new Date(node.getAttribute("datetime"));
      if (isNaN(date)) { return; }
      node.textContent = ago(date);
      node.title = local(date, "datetime") + " " + zone;
    });
  }
  document.addEventListener("DOMContentLoaded", function () { render(document); });
  document.addEventListener("htmx:afterSettle", function (event) { render(event.detail.elt || document); });
  setInterval(function () { relative(document); }, 15000);
})();
// A deploy page's tab tells its state: the title starts with it and the icon takes its colour.
(function () {
  "use strict";
  const looks = {
    queued: ["•", "#2563eb"], running: ["▶", "#2563eb"], awaiting_approval: ["⏸", "#a44a06"],
    succeeded: ["✓", "#15803d"], failed: ["✗", "#b91c1c"], rolled_back: ["✗", "#b91c1c"],
    tests_failed: ["✗", "#b91c1c"], interrupted: ["✗", "#b91c1c"], cancelled: ["–", "#5f6673"]
  };
  let plainTitle = null;
  function show() {
    const badge = document.querySelector("#deploy-status [data-status]");
    const icon = document.getElementById("favicon");
    if (!badge || !icon) { return; }
    const look = looks[badge.dataset.status] || ["•", "#5f6673"];
    plainTitle = plainTitle || document.title;
    document.title = look[0] + " " + badge.textContent.trim() + " · " + plainTitle;
    const svg = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'><circle cx='16' cy='16' r='14' fill='" +
      look[1] + "'/></svg>";
    icon.href = "data:image/svg+xml," + encodeURIComponent(svg);
    icon.dataset.state = badge.dataset.status;
  }
  document.addEventListener("DOMContentLoaded", show);
  document.addEventListener("htmx:afterSettle", show);
})();
// The deploy log: show one host's lines (?host= keeps the choice in the link), new lines included.
(function () {
  "use strict";
  const wanted = new URLSearchParams(window.location.search).get("host") || "";
  function refresh() {
    const select = document.getElementById("log-host");
    const log = document.getElementById("log");
    if (!select || !log) { return; }
    const known = new Set(Array.from(select.options, function (option) { return option.value; }));
    log.querySelectorAll(".line[data-host]").forEach(function (line) {
      const host = line.dataset.host;
      if (host && !known.has(host)) {
        known.add(host);
        select.add(new Option(host, host));
      }
    });
    if (wanted && !select.value && known.has(wanted)) { select.value = wanted; }
    log.querySelectorAll(".line").forEach(function (line) {
      line.hidden = select.value !== "" && line.dataset.host !== select.value;
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.id !== "log-host") { return; }
    const url = new URL(window.location.href);
    if (event.target.value) { url.searchParams.set("host", event.target.value); } else { url.searchParams.delete("host"); }
    window.history.replaceState(null, "", url);
    refresh();
  });
  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("htmx:afterSettle", refresh);
})();
// The services matrix: show only rows in a state (failing, deploying, locked, drifted); ?state= keeps it.
(function () {
  "use strict";
  function apply() {
    const select = document.getElementById("matrix-state");
    if (!select) { return; }
    const wanted = select.value;
    document.querySelectorAll("#matrix tr[data-service]").forEach(function (row) {
      row.hidden = wanted !== "" && (row.dataset.states || "").split(" ").indexOf(wanted) < 0;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    const select = document.getElementById("matrix-state");
    const wanted = new URLSearchParams(window.location.search).get("state");
    if (select && wanted) { select.value = wanted; }
    apply();
  });
  document.addEventListener("change", function (event) {
    if (event.target.id !== "matrix-state") { return; }
    const url = new URL(window.location.href);
    if (event.target.value) { url.searchParams.set("state", event.target.value); } else { url.searchParams.delete("state"); }
    window.history.replaceState(null, "", url);
    apply();
  });
  document.addEventListener("htmx:afterSettle", apply);
})();
