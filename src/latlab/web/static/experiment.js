// One experiment: a live latency chart (every result from the SSE feed, replay first; one
// feed per location of an experiment run at several), its figures, its results newest first
// (a location at a time), and the buttons that drive it.
import { act, api, cell, latest, ms, plannedProbes, problem, root, showActions, solved } from "./api.js";
import { lineChart, redrawer, sizedChart, uPlot } from "./charts.js";

const section = document.getElementById("experiment");
const id = Number(section.dataset.id);

const PAGE = 50;
const FIGURES_EVERY_MS = 2000;
const ENDED = new Set(["completed", "stopped", "failed"]);
const chartBox = document.getElementById("chart");
const picker = document.getElementById("location");
const points = []; // every result drawn: {at (s since the epoch), latency, dns, connect, ttfb}
let unsorted = false; // a location's point came after a later one of another location
let newestFirstPage = 0;
const feeds = [];

const chart = lineChart(
  chartBox,
  [[], [], [], [], []],
  [
    ["latency", "#2a7ae2"],
    ["DNS", "#9c27b0", false],
    ["connect", "#e67e22", false],
    ["TTFB", "#16a085", false],
  ],
);
const phasesBox = document.getElementById("phases");
const phaseLine = (label, stroke) => ({ label, stroke, width: 1, value: (_, v) => ms(v) });
const phases = sizedChart(
  phasesBox,
  {
    scales: { x: { time: true } },
    axes: [{}, { label: "ms, cumulative" }],
    series: [
      {},
      { ...phaseLine("DNS", "#9c27b0"), fill: "rgba(156,39,176,0.25)" },
      phaseLine("+ connect", "#e67e22"),
      phaseLine("+ first byte", "#16a085"),
      phaseLine("+ rest (total)", "#2a7ae2"),
    ],
    bands: [
      { series: [2, 1], fill: "rgba(230,126,34,0.25)" },
      { series: [3, 2], fill: "rgba(22,160,133,0.25)" },
      { series: [4, 3], fill: "rgba(42,122,226,0.2)" },
    ],
  },
  [[], [], [], [], []],
);

/** Each probe's phases added up, for the stacked chart (a failed probe draws nothing). */
function stacked(point) {
  if (point.latency === null) return [null, null, null, null];
  const dns = point.dns ?? 0;
  const connected = dns + (point.connect ?? 0);
  const firstByte = connected + (point.ttfb ?? 0);
  return [dns, connected, Math.min(firstByte, point.latency), point.latency];
}

const redraw = redrawer(() => {
  if (unsorted) points.sort((a, b) => a.at - b.at); // uPlot needs x ascending
  unsorted = false;
  const columns = ["at", "latency", "dns", "connect", "ttfb"].map((key) => points.map((point) => point[key]));
  chart.setData(columns);
  chartBox.dataset.points = `${points.length}`;
  const sums = points.map(stacked);
  phases.setData([columns[0], ...[0, 1, 2, 3].map((i) => sums.map((sum) => sum[i]))]);
  phasesBox.dataset.points = `${points.length}`;
  phasesBox.dataset.last = JSON.stringify(sums.at(-1) ?? []); // the newest probe's stack
});

function add(result) {
  const at = new Date(result.timestamp).getTime() / 1000;
  unsorted ||= points.length > 0 && at < points.at(-1).at;
  const latency = result.latency_ms < 0 ? null : result.latency_ms;
  points.push({ at, latency, dns: result.dns_ms, connect: result.connect_ms, ttfb: result.ttfb_ms });
  redraw();
}

async function showFigures() {
  const [experiment, stats] = await Promise.all([api(`experiments/${id}`), api(`experiments/${id}/stats`)]);
  const { settings } = experiment;
  const where = settings.locations ? ` at ${settings.locations.join(", ")}` : "";
  document.getElementById("target").textContent =
    `${settings.method} ${settings.scheme}://${settings.host}:${settings.port}${settings.path} every ${settings.interval_s} s${where}`;
  showActions(experiment.state);
  document.getElementById("done").textContent = `${experiment.done} / ${plannedProbes(settings)}`;
  for (const name of ["p50", "p90", "p99"]) {
    document.getElementById(name).textContent = `${ms(stats[`${name}_ms`])} ms`;
  }
  document.getElementById("errors").textContent = `${stats.errors}`;
  return experiment;
}

function resultRow(result) {
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
}

/** The page of results newest first: of the location picked, for an experiment at several. */
const showResults = latest(async (isLatest) => {
  const at = picker.hidden ? "" : `&location=${encodeURIComponent(picker.value)}`;
  const { count } = await api(`experiments/${id}/results?limit=1${at}`);
  const end = Math.max(0, count - newestFirstPage * PAGE);
  const offset = Math.max(0, end - PAGE);
  const page = end > 0 ? await api(`experiments/${id}/results?offset=${offset}&limit=${end - offset}${at}`) : null;
  if (!isLatest()) return; // a later call (a page turned meanwhile) draws its own
  const table = document.querySelector("#results tbody");
  table.replaceChildren(...(page?.data ?? []).reverse().map(resultRow));
  table.dataset.location = picker.hidden ? "" : picker.value;
  const pages = Math.max(1, Math.ceil(count / PAGE));
  document.getElementById("page").textContent = `page ${newestFirstPage + 1} of ${pages}`;
  document.getElementById("newer").disabled = newestFirstPage === 0;
  document.getElementById("older").disabled = newestFirstPage + 1 >= pages;
});

const smokeBox = document.getElementById("smoke");
const smoke = sizedChart(
  smokeBox,
  {
    scales: { x: { time: true } },
    axes: [{}, { label: "ms" }],
    series: [
      {},
      { label: "min", stroke: "rgba(42,122,226,0.4)" },
      { label: "p50", stroke: "#1f5fb0", width: 2 },
      { label: "p99", stroke: "rgba(42,122,226,0.6)" },
      { label: "max", stroke: "rgba(42,122,226,0.4)" },
    ],
    bands: [
      { series: [4, 1], fill: "rgba(42,122,226,0.10)" },
      { series: [3, 2], fill: "rgba(42,122,226,0.25)" },
    ],
  },
  [[], [], [], [], []],
);

const showSmoke = latest(async (isLatest) => {
  const minutes = (await api(`experiments/${id}/bands${located()}`)).data;
  if (!isLatest()) return; // another location was picked meanwhile
  const at = minutes.map((band) => new Date(band.start).getTime() / 1000);
  const columns = ["min_ms", "p50_ms", "p99_ms", "max_ms"].map((key) => minutes.map((band) => band[key]));
  if (at.length === 1) {
    // One minute alone is drawn over years: the minutes around it, empty, frame it.
    at.unshift(at[0] - 60);
    at.push(at.at(-1) + 60);
    for (const column of columns) column.splice(0, column.length, null, ...column, null);
  }
  smoke.setData([at, ...columns]);
  smokeBox.dataset.minutes = `${minutes.length}`;
});

const histogramBox = document.getElementById("histogram");
const histogram = sizedChart(
  histogramBox,
  {
    scales: { x: { time: false, distr: 3 }, y: { range: (_, __, max) => [0, max * 1.1] } },
    axes: [{ label: "ms" }, { label: "probes" }],
    series: [{}, { label: "probes", fill: "rgba(22,160,133,0.5)", stroke: "#16a085", paths: uPlot.paths.bars() }],
  },
  [[], []],
);

/** Probes per HDR step: the percentile distribution's counts, step by step. */
const showHistogram = latest(async (isLatest) => {
  const steps = (await api(`experiments/${id}/percentiles${located()}`)).data;
  if (!isLatest()) return;
  const values = [];
  const counts = [];
  let before = 0;
  for (const step of steps) {
    if (step.total_count === before) continue;
    values.push(step.value_ms);
    counts.push(step.total_count - before);
    before = step.total_count;
  }
  histogram.setData([values, counts]);
  histogramBox.dataset.probes = `${before}`;
});

const located = () => (picker.hidden ? "" : `?location=${encodeURIComponent(picker.value)}`);

let over = false; // ended, and drawn once since: nothing will change any more

async function refresh() {
  if (over) return;
  try {
    const [experiment] = await Promise.all([showFigures(), showResults(), showSmoke(), showHistogram()]);
    solved("read");
    over = ENDED.has(experiment.state);
    return experiment;
  } catch (error) {
    problem(error.status === 404 ? `Experiment ${id} does not exist (any more).` : error.message, "read");
    return null;
  }
}

/** One feed per location (each replays its own results by seq), or the experiment's own. */
function follow(locations) {
  const queries = locations ? locations.map((where) => `location=${encodeURIComponent(where)}&`) : [""];
  for (const query of queries) {
    const events = new EventSource(`${root}/api/v1/experiments/${id}/events?${query}after=-1`);
    events.addEventListener("result", (event) => add(JSON.parse(event.data)));
    events.addEventListener("state", (event) => {
      const { state } = JSON.parse(event.data);
      showActions(state);
      if (ENDED.has(state)) events.close(); // over: a reconnect would only replay it
      refresh();
    });
    feeds.push(events);
  }
}

function pickable(locations) {
  if (!locations) return;
  picker.replaceChildren(...locations.map((where) => new Option(where, where)));
  picker.hidden = false;
  document.getElementById("location-label").hidden = false;
}

function turn(by) {
  newestFirstPage = Math.max(0, newestFirstPage + by);
  showResults();
}

for (const button of document.querySelectorAll("#actions button")) {
  button.addEventListener("click", () => act(button, `experiments/${id}`, (done) => showActions(done.state)));
}
document.getElementById("newer").addEventListener("click", () => turn(-1));
document.getElementById("older").addEventListener("click", () => turn(1));
picker.addEventListener("change", () => {
  turn(-newestFirstPage);
  showSmoke();
  showHistogram();
});
const experiment = await api(`experiments/${id}`).catch(() => null);
pickable(experiment?.settings.locations);
await refresh();
if (experiment) follow(experiment.settings.locations);
setInterval(refresh, FIGURES_EVERY_MS);
