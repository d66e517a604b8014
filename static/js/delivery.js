// Draws the delivery page's charts from the numbers the page embeds (each chart's table shows the same).
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("delivery-charts");
    if (!source || typeof Chart === "undefined") return;
    var charts = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var data = charts[canvas.dataset.chart];
      if (!data) return;
      canvas.chart = new Chart(canvas, {
        type: "bar",
        data: {
          labels: data.labels,
          datasets: [{ label: canvas.dataset.label || "deploys", data: data.values, backgroundColor: "#3b82f6" }],
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          plugins: { legend: { display: false } },
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        },
      });
      canvas.dataset.drawn = "true";
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
