// A report, drawn from the JSON inside it with the uPlot inside it: no network, no server.
// A plain script (not a module): a file opened from disk cannot import modules.
(() => {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const { uPlot } = globalThis;
  const HEIGHT = 300;
  const SECOND_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];

  const ms = (value) => (value === null || value === undefined || value < 0 ? "–" : `${value.toFixed(2)} ms`);

  function figure(label, value) {
    const box = document.createElement("div");
    const term = document.createElement("dt");
    const shown = document.createElement("dd");
    term.textContent = label;
    shown.textContent = value;
    box.append(term, shown);
    document.getElementById("figures").append(box);
  }

  function row(label, ...values) {
    const tr = document.createElement("tr");
    for (const [index, value] of [label, ...values].entries()) {
      const cell = document.createElement(index === 0 ? "th" : "td");
      cell.textContent = value;
      tr.append(cell);
    }
    document.querySelector("#table tbody").append(tr);
  }

  /** A row per non-zero count of `byName`. */
  function counts(prefix, byName) {
    for (const [name, count] of Object.entries(byName)) if (count > 0) row(`${prefix}${name}`, `${count}`);
  }

  /** Axes in the page's colours: uPlot's own dark grey cannot be read on the dark theme. */
  function inked(axes) {
    const style = getComputedStyle(document.body);
    const line = style.getPropertyValue("--line").trim() || "rgba(128,128,128,0.3)";
    return axes.map((axis) => ({ stroke: style.color, grid: { stroke: line }, ticks: { stroke: line }, ...axis }));
  }

  function chart(title, columns, series, { time = true, yLabel = "ms" } = {}) {
    const heading = document.createElement("h2");
    heading.textContent = title;
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.points = `${columns[0].length}`;
    document.getElementById("charts").append(heading, box);
    const lines = series.map(([label, stroke]) => ({ label, stroke, width: 1.5 }));
    const axes = inked([time ? {} : { incrs: SECOND_STEPS, label: "s" }, { label: yLabel }]);
    new uPlot(
      { width: box.clientWidth || 900, height: HEIGHT, scales: { x: { time } }, axes, series: [{}, ...lines] },
      columns,
      box,
    );
  }

  function experiment() {
    const { experiment: job, stats, points, results } = data;
    const { settings } = job;
    document.getElementById("state").textContent = job.state;
    const where = settings.locations ? ` at ${settings.locations.join(", ")}` : "";
    document.getElementById("target").textContent =
      `${settings.method} ${settings.scheme}://${settings.host}:${settings.port}${settings.path} every ${settings.interval_s} s${where}`;
    figure("Probes", `${stats.count}`);
    for (const name of ["p50", "p90", "p99"]) figure(name, ms(stats[`${name}_ms`]));
    figure("Errors", `${stats.errors}`);
    const drawn = points.length < results ? ` (every ${Math.ceil(results / points.length)}th of ${results})` : "";
    chart(`Latency${drawn}`, [points.map((p) => p[0]), points.map((p) => p[1])], [["latency", "#2a7ae2"]]);
    for (const name of ["min", "mean", "p50", "p90", "p99", "p99_9", "max", "stddev"]) {
      row(name.replace("_", "."), ms(stats[`${name}_ms`]));
    }
    counts("errors: ", stats.errors_by_kind);
  }

  function loadRun() {
    const { run, seconds } = data;
    const { spec, stats } = run;
    document.getElementById("state").textContent = run.state;
    const pace = spec.rate ? `${spec.rate} req/s` : "as fast as it can (closed model)";
    document.getElementById("target").textContent =
      `${spec.method} ${spec.url}: ${pace} over ${spec.connections} connections`;
    figure("Requests", `${stats.requests}`);
    figure("req/s", stats.rps.toFixed(1));
    for (const name of ["p50", "p90", "p99"]) figure(name, ms(stats.latency_ms[name]));
    figure("Errors", `${stats.errors}`);
    const at = seconds.map((s) => s.second);
    chart("Requests per second", [at, seconds.map((s) => s.rps)], [["req/s", "#2a7ae2"]], {
      time: false,
      yLabel: "req/s",
    });
    const percentiles = ["p50_ms", "p90_ms", "p99_ms"].map((key) => seconds.map((s) => s[key]));
    chart(
      "Latency per second",
      [at, ...percentiles],
      [
        ["p50", "#16a085"],
        ["p90", "#e67e22"],
        ["p99", "#d64545"],
      ],
      { time: false },
    );
    const corrected = stats.corrected_latency_ms;
    for (const name of ["min", "mean", "p50", "p90", "p99", "p99_9", "max"]) {
      row(name.replace("_", "."), ms(stats.latency_ms[name]), corrected ? `corrected ${ms(corrected[name])}` : "");
    }
    counts("errors: ", stats.errors_by_kind);
    counts("status ", stats.status);
  }

  if (document.body.dataset.kind === "experiment") experiment();
  else loadRun();
  document.body.dataset.drawn = "yes";
})();
