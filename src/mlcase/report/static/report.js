/* mlcase report: draw every <div class="plotly-fig"> from the JSON in the
   <script type="application/json" data-for="ID"> beside it, with the plotly.js
   bundle inlined in this page. Tables and text need no JavaScript. When all
   figures are done, <body data-plots="done" data-plots-failed="N">. */
(function () {
  "use strict";

  var CONFIG = {
    responsive: true,
    displaylogo: false,
    displayModeBar: "hover",
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
    toImageButtonOptions: { format: "png", scale: 2 }
  };

  /* the report's plot style, for figures that do not bring their own template */
  var AXIS = {
    gridcolor: "#eceff3", linecolor: "#c5cdd8", zerolinecolor: "#d5dbe3", ticks: "outside",
    tickcolor: "#c5cdd8", ticklen: 4, automargin: true, title: { standoff: 8 }
  };
  var TEMPLATE = {
    layout: {
      colorway: ["#2f5d9f", "#e07b39", "#1f7a44", "#b3261e", "#7a4fa3", "#0f8b8d", "#c2185b", "#5b6878"],
      paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff",
      font: { color: "#1d2733", size: 13 },
      title: { x: 0, xanchor: "left", font: { size: 15 } },
      xaxis: AXIS, yaxis: AXIS,
      legend: { bgcolor: "rgba(255,255,255,0)", font: { size: 12 } },
      hoverlabel: { font: { size: 12 } },
      colorscale: { sequential: [[0, "#f4f7fb"], [0.5, "#7ea3d1"], [1, "#1c3f73"]] }
    }
  };

  function fail(div, message) {
    div.classList.add("plot-failed");
    div.setAttribute("data-rendered", "failed");
    div.textContent = "This plot could not be drawn: " + message;
    console.error("mlcase report: plot " + div.id + ": " + message);
  }

  function specs() {
    var out = {};
    var nodes = document.querySelectorAll('script[type="application/json"][data-for]');
    for (var i = 0; i < nodes.length; i++) {
      out[nodes[i].getAttribute("data-for")] = nodes[i];
    }
    return out;
  }

  function layoutFor(div, spec) {
    var layout = Object.assign({}, spec.layout || {});
    if (!layout.template) {
      layout.template = TEMPLATE;
    }
    var font = getComputedStyle(document.body).fontFamily;
    layout.font = Object.assign({ family: font }, layout.font || {});
    if (!layout.margin) {
      layout.margin = { l: 60, r: 20, t: layout.title ? 50 : 20, b: 50 };
    }
    if (!layout.height && !div.style.height) {
      layout.height = 380;
    }
    layout.autosize = true;
    return layout;
  }

  function draw(div, node) {
    if (!node) {
      fail(div, "its data is missing");
      return Promise.resolve(false);
    }
    var spec;
    try {
      spec = JSON.parse(node.textContent);
    } catch (e) {
      fail(div, "its data is not valid JSON (" + e.message + ")");
      return Promise.resolve(false);
    }
    try {
      return Promise.resolve(
        Plotly.newPlot(div, spec.data || [], layoutFor(div, spec), Object.assign({}, CONFIG, spec.config || {}))
      ).then(function () {
        div.setAttribute("data-rendered", "true");
        return true;
      }, function (e) {
        fail(div, String(e && e.message || e));
        return false;
      });
    } catch (e) {
      fail(div, String(e && e.message || e));
      return Promise.resolve(false);
    }
  }

  function renderAll() {
    var divs = document.querySelectorAll("div.plotly-fig");
    var body = document.body;
    if (!divs.length) {
      body.setAttribute("data-plots", "done");
      body.setAttribute("data-plots-failed", "0");
      return;
    }
    var jobs = [];
    var byId = specs();
    for (var i = 0; i < divs.length; i++) {
      if (typeof Plotly === "undefined") {
        fail(divs[i], "plotly.js is not in this page");
        jobs.push(Promise.resolve(false));
      } else {
        jobs.push(draw(divs[i], byId[divs[i].id]));
      }
    }
    Promise.all(jobs).then(function (oks) {
      var failed = oks.filter(function (ok) { return !ok; }).length;
      body.setAttribute("data-plots-failed", String(failed));
      body.setAttribute("data-plots", "done");
    });
  }

  function markCurrent() {
    /* highlight the contents entry of the section in view */
    var links = document.querySelectorAll("#toc a[href^='#']");
    if (!("IntersectionObserver" in window) || !links.length) {
      return;
    }
    var byId = {};
    for (var i = 0; i < links.length; i++) {
      byId[links[i].getAttribute("href").slice(1)] = links[i];
    }
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        var link = byId[entry.target.id];
        if (link && entry.isIntersecting) {
          for (var k in byId) { byId[k].classList.remove("current"); }
          link.classList.add("current");
        }
      });
    }, { rootMargin: "0px 0px -70% 0px" });
    document.querySelectorAll("main section[id]").forEach(function (s) { observer.observe(s); });
  }

  function start() {
    document.documentElement.classList.add("js");
    renderAll();
    markCurrent();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
