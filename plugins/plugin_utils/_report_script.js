/* perfstats.profiler report: cursor readout, sortable tables and bars. Text goes in via textContent only. */
(function () {
  "use strict";
  var doc = document;
  var data = {};
  try {
    data = JSON.parse(doc.getElementById("perfstats-data").textContent);
  } catch (e) {
    data = {};
  }

  function bytes(v) {
    if (v === null || v === undefined) { return "-"; }
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return i === 0 ? v.toFixed(0) + " B" : v.toFixed(1) + " " + units[i];
  }

  function seconds(v) {
    if (v < 60) { return v.toFixed(2) + "s"; }
    var m = Math.floor(v / 60);
    var s = v - 60 * m;
    if (m < 60) { return m + "m" + (s < 10 ? "0" : "") + s.toFixed(1) + "s"; }
    return Math.floor(m / 60) + "h" + ("0" + (m % 60)).slice(-2) + "m";
  }

  function span(cls, text) {
    var el = doc.createElement("span");
    if (cls) { el.className = cls; }
    el.textContent = text;
    return el;
  }

  function lastAtOrBefore(list, t, get) {
    var lo = 0;
    var hi = list.length - 1;
    var found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (get(list[mid]) <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  /* ---- timeline cursor ---- */
  var svg = doc.getElementById("timeline");
  var line = data.timeline;
  if (svg && line) {
    svg.setAttribute("data-cursor-tasks", String(line.tasks.length));
    var readout = doc.getElementById("readout");
    var cursor = doc.getElementById("cursor");
    var bands = {};
    var rects = svg.querySelectorAll("rect.band");
    for (var b = 0; b < rects.length; b += 1) { bands[rects[b].getAttribute("data-index")] = rects[b]; }
    var hot = null;
    var series = line.series;

    var show = function (evt) {
      var box = svg.getBoundingClientRect();
      var scale = svg.viewBox.baseVal.width / box.width;
      var x = (evt.clientX - box.left) * scale;
      var t = (x - line.left) / line.plot_w * line.t_end;
      if (t < 0 || t > line.t_end) { return; }
      cursor.setAttribute("x1", x);
      cursor.setAttribute("x2", x);
      cursor.setAttribute("visibility", "visible");
      var k = lastAtOrBefore(line.tasks, t, function (task) { return task[1]; });
      var task = k >= 0 && t <= line.tasks[k][2] + 1e-3 ? line.tasks[k] : null;
      if (hot) { hot.classList.remove("hot"); hot = null; }
      readout.textContent = "";
      readout.appendChild(span("", "at " + seconds(t) + ": "));
      if (task) {
        hot = bands[String(task[0])] || null;
        if (hot) { hot.classList.add("hot"); }
        readout.appendChild(span("task", task[0] + ". " + task[3]));
        if (task[4]) { readout.appendChild(span("", " (play: " + task[4] + ")")); }
      } else {
        readout.appendChild(span("", "between tasks"));
      }
      var i = lastAtOrBefore(series.t, t, function (v) { return v; });
      if (i >= 0) {
        readout.appendChild(doc.createElement("br"));
        var cpu = series.cpu[i];
        readout.appendChild(span("", "CPU " + (cpu === null ? "-" : cpu.toFixed(0) + "%") +
          " \u00b7 memory " + bytes(series.mem[i]) + " \u00b7 PIDs " + (series.pids[i] === null ? "-" : series.pids[i])));
      }
    };
    svg.addEventListener("mousemove", show);
    svg.addEventListener("mouseleave", function () {
      cursor.setAttribute("visibility", "hidden");
      if (hot) { hot.classList.remove("hot"); hot = null; }
    });
  }

  /* ---- sortable tables ---- */
  function cellValue(row, col, numeric) {
    var cell = row.cells[col];
    if (!cell) { return numeric ? null : ""; }
    var v = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
    if (!numeric) { return (v || "").toLowerCase(); }
    return v === "" || v === null ? null : parseFloat(v);
  }

  function sortTable(table, col, numeric, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var descending = !th.classList.contains("desc");
    if (!th.classList.contains("asc") && !th.classList.contains("desc")) { descending = numeric; }
    var heads = table.tHead.rows[0].cells;
    for (var h = 0; h < heads.length; h += 1) { heads[h].classList.remove("asc", "desc"); }
    th.classList.add(descending ? "desc" : "asc");
    rows.sort(function (a, b) {
      var x = cellValue(a, col, numeric);
      var y = cellValue(b, col, numeric);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      return (x < y ? -1 : 1) * (descending ? -1 : 1);
    });
    var frag = doc.createDocumentFragment();
    rows.forEach(function (row) { frag.appendChild(row); });
    body.appendChild(frag);
  }

  var tables = doc.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, col) {
      var type = th.getAttribute("data-type");
      if (!type) { return; }
      th.addEventListener("click", function () { sortTable(table, col, type === "num", th); });
    });
  });

  /* ---- bars ---- */
  var sorter = doc.getElementById("bar-sorter");
  var bars = doc.getElementById("bars");
  if (sorter && bars) {
    Array.prototype.forEach.call(sorter.querySelectorAll("button"), function (button) {
      button.addEventListener("click", function () {
        var key = button.getAttribute("data-key");
        var rows = Array.prototype.slice.call(bars.querySelectorAll(".bar-row"));
        rows.sort(function (a, b) {
          var x = parseFloat(a.getAttribute("data-" + key)) || 0;
          var y = parseFloat(b.getAttribute("data-" + key)) || 0;
          if (key === "index") { return x - y; }
          return y - x || parseFloat(a.getAttribute("data-index")) - parseFloat(b.getAttribute("data-index"));
        });
        var frag = doc.createDocumentFragment();
        rows.forEach(function (row) { frag.appendChild(row); });
        bars.appendChild(frag);
        Array.prototype.forEach.call(sorter.querySelectorAll("button"), function (other) {
          other.classList.toggle("on", other === button);
        });
      });
    });
  }

  doc.documentElement.setAttribute("data-ready", "1");
}());
