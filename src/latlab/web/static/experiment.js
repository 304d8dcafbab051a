// One experiment: a live latency chart (every result from the SSE feed, replay first), its
// figures, its results newest first, and the buttons that drive it.
import { act, api, cell, ms, problem, root, showActions, solved } from "./api.js";
import { lineChart, redrawer } from "./charts.js";

const section = document.getElementById("experiment");
const id = Number(section.dataset.id);

const PAGE = 50;
const FIGURES_EVERY_MS = 2000;
// Seconds since the epoch, then one column per series: what uPlot draws.
const columns = [[], [], [], [], []];
const chartBox = document.getElementById("chart");
let newestFirstPage = 0;
let total = 0;

const chart = lineChart(chartBox, columns, [
  ["latency", "#2a7ae2"],
  ["DNS", "#9c27b0", false],
  ["connect", "#e67e22", false],
  ["TTFB", "#16a085", false],
]);
const redraw = redrawer(() => {
  chart.setData(columns);
  chartBox.dataset.points = `${columns[0].length}`;
});

function add(result) {
  const failed = result.latency_ms < 0;
  columns[0].push(new Date(result.timestamp).getTime() / 1000);
  columns[1].push(failed ? null : result.latency_ms);
  columns[2].push(result.dns_ms ?? null);
  columns[3].push(result.connect_ms ?? null);
  columns[4].push(result.ttfb_ms ?? null);
  redraw();
}

async function showFigures() {
  const [experiment, stats] = await Promise.all([api(`experiments/${id}`), api(`experiments/${id}/stats`)]);
  const { settings } = experiment;
  document.getElementById("target").textContent =
    `${settings.method} ${settings.scheme}://${settings.host}:${settings.port}${settings.path} every ${settings.interval_s} s`;
  showActions(experiment.state);
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
    solved("read");
  } catch (error) {
    problem(error.status === 404 ? `Experiment ${id} does not exist (any more).` : error.message, "read");
  }
}

function follow() {
  const events = new EventSource(`${root}/api/v1/experiments/${id}/events?after=-1`);
  events.addEventListener("result", (event) => add(JSON.parse(event.data)));
  events.addEventListener("state", (event) => {
    showActions(JSON.parse(event.data).state);
    refresh();
  });
}

for (const button of document.querySelectorAll("#actions button")) {
  button.addEventListener("click", () => act(button, `experiments/${id}`, (done) => showActions(done.state)));
}
document.getElementById("newer").addEventListener("click", () => {
  newestFirstPage -= 1;
  showResults();
});
document.getElementById("older").addEventListener("click", () => {
  newestFirstPage += 1;
  showResults();
});
await refresh();
follow();
setInterval(refresh, FIGURES_EVERY_MS);
