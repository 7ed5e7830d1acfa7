/* A little plain JS (works in WeChat's in-app browser): deadline countdowns, and live updates over EventSource
   (server-sent events; the HttpOnly session cookie authenticates it). Pages work without it. */
(function () {
  "use strict";
  var zh = document.documentElement.lang.indexOf("zh") === 0;
  function left(ms) {
    var late = ms < 0, m = Math.floor(Math.abs(ms) / 60000), h = Math.floor(m / 60), d = Math.floor(h / 24);
    var text = d >= 1 ? d + (zh ? "天" : " d") + " " + (h % 24) + (zh ? "小时" : " h")
             : h >= 1 ? h + (zh ? "小时" : " h") + " " + (m % 60) + (zh ? "分钟" : " min")
             : m + (zh ? "分钟" : " min");
    return late ? (zh ? "已超时 " : "overdue by ") + text : (zh ? "还剩 " : "") + text + (zh ? "" : " left");
  }
  function tick() {
    var els = document.querySelectorAll("time[data-countdown]");
    for (var i = 0; i < els.length; i++) {
      var due = Date.parse(els[i].getAttribute("datetime"));
      if (!isNaN(due)) {
        var ms = due - Date.now();
        els[i].textContent = left(ms);
        els[i].className = ms < 0 ? "overdue" : "";
      }
    }
  }
  tick();
  setInterval(tick, 30000);

  var config = document.getElementById("live-config");
  if (!config || !window.EventSource) return;
  var url = "/api/v1/events";
  var demands = (config.getAttribute("data-demands") || "").split(" ").filter(Boolean);
  if (demands.length) url += "?" + demands.map(function (d) { return "demand=" + encodeURIComponent(d); }).join("&");
  var reloadOn = (config.getAttribute("data-reload-on") || "").split(" ").filter(Boolean);
  var status = document.getElementById("live-status");
  var source = new EventSource(url);
  document.body.setAttribute("data-live", "connecting");
  source.addEventListener("ready", function () { document.body.setAttribute("data-live", "ready"); });
  // Regions marked data-live-region (with an id) are fetched again and swapped in place: the page is not
  // reloaded, the stream stays open, nothing jumps while the person reads. A page without regions reloads.
  var generation = 0;
  function swap(kind) {
    var mine = ++generation;
    var xhr = new XMLHttpRequest();
    xhr.open("GET", window.location.href);
    xhr.responseType = "document";
    xhr.onload = function () {
      if (mine !== generation) return;
      if (xhr.status !== 200 || !xhr.response) { window.location.reload(); return; }
      var regions = document.querySelectorAll("[data-live-region]");
      for (var i = 0; i < regions.length; i++) {
        var fresh = xhr.response.getElementById(regions[i].id);
        if (fresh) regions[i].parentNode.replaceChild(document.importNode(fresh, true), regions[i]);
      }
      tick();
      document.body.setAttribute("data-live-swapped", kind);
    };
    xhr.onerror = function () { if (mine === generation) window.location.reload(); };
    xhr.send();
  }
  function refresh(kind) {
    var badge = document.getElementById(config.getAttribute("data-badge") || "");
    if (status) status.textContent = zh ? "有新消息" : "New update";
    document.body.setAttribute("data-live-last", kind);
    // Never under someone's fingers: while they type, only say that there is news.
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA" || active.tagName === "SELECT")) {
      if (badge) badge.hidden = false;
      return;
    }
    if (document.querySelector("[data-live-region]")) swap(kind);
    else setTimeout(function () { window.location.reload(); }, 300);
  }
  reloadOn.concat(["reload", "DemandPosted"]).forEach(function (kind) {
    source.addEventListener(kind, function () { refresh(kind); });
  });
  source.addEventListener("signed-out", function () { source.close(); });
})();
