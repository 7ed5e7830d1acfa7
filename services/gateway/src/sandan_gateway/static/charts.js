/* The office page's charts (Apache ECharts, vendored): the same figures as the table under them. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("chart-data").textContent || "[]");
  if (!window.echarts || !data.length) return;
  var zh = document.documentElement.lang.indexOf("zh") === 0;
  var names = data.map(function (r) { return r.name; });
  function pct(v) { return v < 0 ? null : Math.round(v * 100); }
  var rates = echarts.init(document.getElementById("chart-rates"));
  rates.setOption({
    tooltip: {}, legend: {}, grid: { left: 40, right: 10, bottom: 80 },
    xAxis: { type: "category", data: names, axisLabel: { rotate: 30 } }, yAxis: { type: "value", max: 100 },
    series: [
      { name: zh ? "响应率" : "Response", type: "bar", data: data.map(function (r) { return pct(r.response); }) },
      { name: zh ? "完成率" : "Completion", type: "bar", data: data.map(function (r) { return pct(r.completion); }) },
      { name: zh ? "满意率" : "Satisfaction", type: "bar", data: data.map(function (r) { return pct(r.satisfaction); }) }
    ], aria: { enabled: true }
  });
  var overdue = echarts.init(document.getElementById("chart-overdue"));
  overdue.setOption({
    tooltip: {}, grid: { left: 40, right: 10, bottom: 80 },
    xAxis: { type: "category", data: names, axisLabel: { rotate: 30 } }, yAxis: { type: "value", minInterval: 1 },
    series: [{ name: zh ? "超时订单" : "Overdue", type: "bar", color: "#b71c1c",
               data: data.map(function (r) { return r.overdue; }) }], aria: { enabled: true }
  });
  window.addEventListener("resize", function () { rates.resize(); overdue.resize(); });
})();
