// Small charts from JSON embedded in the page: <canvas data-chart="line|bar"
// data-source="id-of-a-json_script"> with a list of {label, value}.
(function () {
  "use strict";
  function draw() {
    if (!window.Chart) return;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.dataset.source);
      if (!source) return;
      var points = JSON.parse(source.textContent);
      new window.Chart(canvas, {
        type: canvas.dataset.chart,
        data: {
          labels: points.map(function (p) { return p.label; }),
          datasets: [{
            label: canvas.getAttribute("aria-label") || "",
            data: points.map(function (p) { return p.value; }),
            backgroundColor: "rgba(15, 118, 110, 0.75)",
            borderColor: "rgba(15, 118, 110, 1)",
            borderRadius: 3,
            tension: 0.2,
          }],
        },
        options: {
          maintainAspectRatio: false,
          animation: false,
          plugins: { legend: { display: false } },
          scales: { x: { grid: { display: false }, ticks: { maxTicksLimit: 8 } },
                    y: { ticks: { precision: 0 } } },
        },
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
