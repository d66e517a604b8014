// Draws the deploy page's canary analysis: per metric, the canary's and the baseline's values at each
// measurement (the table below shows the same numbers; no data is a gap, never a zero).
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("canary-charts");
    if (!source || typeof Chart === "undefined") return;
    var charts = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-canary-chart]").forEach(function (canvas) {
      var data = charts[canvas.dataset.canaryChart];
      if (!data) return;
      canvas.chart = new Chart(canvas, {
        type: "line",
        data: {
          labels: data.labels,
          datasets: [
            { label: "canary", data: data.canary, borderColor: "#ef4444", backgroundColor: "#ef4444", spanGaps: false },
            { label: "baseline", data: data.baseline, borderColor: "#3b82f6", backgroundColor: "#3b82f6", spanGaps: false },
          ],
        },
        options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
      });
      canvas.dataset.drawn = "true";
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
