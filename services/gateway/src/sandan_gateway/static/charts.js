/* The office page's charts (Apache ECharts, vendored): the same figures as the tables under them. */
(function () {
  "use strict";
  function read(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent || "[]") : [];
  }
  var data = read("chart-data"), units = read("unit-chart-data");
  if (!window.echarts) return;
  var zh = document.documentElement.lang.indexOf("zh") === 0;
  var names = data.map(function (r) { return r.name; });
  function pct(v) { return v < 0 ? null : Math.round(v * 100); }
  // the three rates of each row (a community or a unit) as grouped bars, in the tables' order
  function rateChart(id, rows) {
    var el = document.getElementById(id);
    if (!el || !rows.length) return null;
    var chart = echarts.init(el);
    chart.setOption({
      tooltip: {}, legend: {}, grid: { left: 40, right: 10, bottom: 80 },
      xAxis: { type: "category", data: rows.map(function (r) { return r.name; }), axisLabel: { rotate: 30 } },
      yAxis: { type: "value", max: 100 },
      series: [
        { name: zh ? "响应率" : "Response", type: "bar", data: rows.map(function (r) { return pct(r.response); }) },
        { name: zh ? "完成率" : "Completion", type: "bar", data: rows.map(function (r) { return pct(r.completion); }) },
        { name: zh ? "满意率" : "Satisfaction", type: "bar", data: rows.map(function (r) { return pct(r.satisfaction); }) }
      ], aria: { enabled: true }
    });
    return chart;
  }
  var unitRates = rateChart("chart-units", units);
  if (unitRates) window.addEventListener("resize", function () { unitRates.resize(); });
  if (!data.length) return;
  var rates = rateChart("chart-rates", data);
  var overdue = echarts.init(document.getElementById("chart-overdue"));
  overdue.setOption({
    tooltip: {}, grid: { left: 40, right: 10, bottom: 80 },
    xAxis: { type: "category", data: names, axisLabel: { rotate: 30 } }, yAxis: { type: "value", minInterval: 1 },
    series: [{ name: zh ? "超时订单" : "Overdue", type: "bar", color: "#b71c1c",
               data: data.map(function (r) { return r.figures ? r.overdue : null; }) }],
               aria: { enabled: true }
  });
  window.addEventListener("resize", function () { rates.resize(); overdue.resize(); });
})();
