// One experiment: a live latency chart (every result from the SSE feed, replay first), its
// figures, its results newest first, and the buttons that drive it.
import { api, cell, ms, problem, root } from "./api.js";

const section = document.getElementById("experiment");
const id = Number(section.dataset.id);
const { default: uPlot } = await import(`${section.dataset.vendor}/uplot/uPlot.esm.js`);

const PAGE = 50;
const FIGURES_EVERY_MS = 2000;
// Seconds since the epoch, then one column per series: what uPlot draws.
const columns = [[], [], [], [], []];
const chartBox = document.getElementById("chart");
let chart = null;
let redrawQueued = false;
let newestFirstPage = 0;
let total = 0;

function makeChart() {
  const line = (label, stroke, show = true) => ({ label, stroke, show, width: 1.5, value: (_, v) => ms(v) });
  return new uPlot(
    {
      width: chartBox.clientWidth || 800,
      height: 320,
      scales: { x: { time: true } },
      axes: [{}, { label: "ms" }],
      series: [
        {},
        line("latency", "#2a7ae2"),
        line("DNS", "#9c27b0", false),
        line("connect", "#e67e22", false),
        line("TTFB", "#16a085", false),
      ],
    },
    columns,
    chartBox,
  );
}

function redraw() {
  redrawQueued = false;
  chart.setData(columns);
  chartBox.dataset.points = `${columns[0].length}`;
}

function add(result) {
  const failed = result.latency_ms < 0;
  columns[0].push(new Date(result.timestamp).getTime() / 1000);
  columns[1].push(failed ? null : result.latency_ms);
  columns[2].push(result.dns_ms ?? null);
  columns[3].push(result.connect_ms ?? null);
  columns[4].push(result.ttfb_ms ?? null);
  if (!redrawQueued) {
    redrawQueued = true;
    requestAnimationFrame(redraw);
  }
}

function showState(experiment) {
  const badge = document.getElementById("state");
  badge.textContent = experiment.state;
  badge.className = `state state-${experiment.state}`;
  const allowed = {
    created: ["start", "stop", "delete"],
    running: ["pause", "stop", "delete"],
    paused: ["resume", "stop", "delete"],
  }[experiment.state] ?? ["delete"];
  for (const button of document.querySelectorAll("#actions button")) {
    button.disabled = !allowed.includes(button.dataset.action);
  }
}

async function showFigures() {
  const [experiment, stats] = await Promise.all([api(`experiments/${id}`), api(`experiments/${id}/stats`)]);
  const { settings } = experiment;
  document.getElementById("target").textContent =
    `${settings.method} ${settings.scheme}://${settings.host}:${settings.port}${settings.path} every ${settings.interval_s} s`;
  showState(experiment);
  document.getElementById("done").textContent = `${experiment.done} / ${settings.count}`;
  for (const name of ["p50", "p90", "p99"]) {
    document.getElementById(name).textContent = `${ms(stats[`${name}_ms`])} ms`;
  }
  document.getElementById("errors").textContent = `${stats.errors}`;
  return experiment;
}

async function showResults() {
  const first = await api(`experiments/${id}/results?limit=1`);
  total = first.count;
  const end = Math.max(0, total - newestFirstPage * PAGE);
  const offset = Math.max(0, end - PAGE);
  const page = end > 0 ? await api(`experiments/${id}/results?offset=${offset}&limit=${end - offset}`) : { data: [] };
  const rows = page.data.reverse().map((result) => {
    const row = document.createElement("tr");
    if (result.error) row.className = "failed";
    row.append(
      cell(`${result.seq}`, "number"),
      cell(new Date(result.timestamp).toLocaleTimeString()),
      cell(`${result.status_code || "–"}`, "number"),
      cell(ms(result.latency_ms), "number"),
      cell(ms(result.dns_ms), "number"),
      cell(ms(result.connect_ms), "number"),
      cell(ms(result.ttfb_ms), "number"),
      cell(result.error ?? ""),
    );
    return row;
  });
  document.querySelector("#results tbody").replaceChildren(...rows);
  const pages = Math.max(1, Math.ceil(total / PAGE));
  document.getElementById("page").textContent = `page ${newestFirstPage + 1} of ${pages}`;
  document.getElementById("newer").disabled = newestFirstPage === 0;
  document.getElementById("older").disabled = newestFirstPage + 1 >= pages;
}

async function refresh() {
  try {
    await Promise.all([showFigures(), showResults()]);
    problem(null);
  } catch (error) {
    problem(error.status === 404 ? `Experiment ${id} does not exist (any more).` : error.message);
  }
}

async function act(button) {
  const { action, confirm: question } = button.dataset;
  if (question && !window.confirm(question)) return;
  try {
    if (action === "delete") {
      await api(`experiments/${id}`, { method: "DELETE" });
      location.assign(`${root}/ui/`);
      return;
    }
    showState(await api(`experiments/${id}/${action}`, { method: "POST" }));
  } catch (error) {
    problem(`${action}: ${error.message}`);
  }
}

function follow() {
  const events = new EventSource(`${root}/api/v1/experiments/${id}/events?after=-1`);
  events.addEventListener("result", (event) => add(JSON.parse(event.data)));
  events.addEventListener("state", (event) => {
    showState(JSON.parse(event.data));
    refresh();
  });
}

for (const button of document.querySelectorAll("#actions button")) {
  button.addEventListener("click", () => act(button));
}
document.getElementById("newer").addEventListener("click", () => {
  newestFirstPage -= 1;
  showResults();
});
document.getElementById("older").addEventListener("click", () => {
  newestFirstPage += 1;
  showResults();
});
new ResizeObserver(() => chart?.setSize({ width: chartBox.clientWidth, height: 320 })).observe(chartBox);

chart = makeChart();
await refresh();
follow();
setInterval(refresh, FIGURES_EVERY_MS);
