// The wallet's spend-per-day chart, from the JSON embedded in the page.
(function () {
  "use strict";
  function draw() {
    var canvas = document.getElementById("spend-chart");
    var source = document.getElementById("spend-data");
    if (!canvas || !source || !window.Chart) return;
    var days = JSON.parse(source.textContent);
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: days.map(function (d) { return d.day.slice(5); }),
        datasets: [{
          label: "Tokens spent",
          data: days.map(function (d) { return d.tokens; }),
          backgroundColor: "rgba(15, 118, 110, 0.75)",
          borderRadius: 3,
        }],
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: false } },
        scales: {
          x: { grid: { display: false }, ticks: { maxTicksLimit: 8 } },
          y: { beginAtZero: true, ticks: { precision: 0 } },
        },
      },
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
