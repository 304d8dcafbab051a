// One load run: req/s and per-second latency drawn live from its SSE feed (every stored
// second first), its figures, the control that changes a running run, and its buttons.
import { act, api, cell, ms, problem, showActions, solved } from "./api.js";
import { lineChart, redrawer } from "./charts.js";

const section = document.getElementById("load-run");
const id = Number(section.dataset.id);
const FIGURES_EVERY_MS = 2000;
const TABLE_ROWS = 60;
const ENDED = new Set(["completed", "stopped", "failed"]);

const rateBox = document.getElementById("rate-chart");
const rates = [[], []]; // second, req/s
const latencies = [[], [], [], []]; // second, p50, p90, p99
const rows = [];
const rateChart = lineChart(rateBox, rates, [["req/s", "#2a7ae2"]], {
  time: false,
  yLabel: "req/s",
  format: (v) => `${v ?? "–"}`,
});
const latencyChart = lineChart(
  document.getElementById("latency-chart"),
  latencies,
  [
    ["p50", "#16a085"],
    ["p90", "#e67e22"],
    ["p99", "#d64545"],
  ],
  { time: false },
);

const redraw = redrawer(() => {
  rateChart.setData(rates);
  latencyChart.setData(latencies);
  rateBox.dataset.points = `${rates[0].length}`;
  rateBox.dataset.lastRps = `${rates[1].at(-1) ?? ""}`;
  const newest = rows.slice(-TABLE_ROWS).reverse();
  document.querySelector("#seconds tbody").replaceChildren(...newest.map(secondRow));
});

function secondRow(second) {
  const row = document.createElement("tr");
  row.append(
    cell(`${second.second}`, "number"),
    cell(`${second.requests}`, "number"),
    cell(`${second.errors}`, "number"),
    cell(`${second.rps}`, "number"),
    cell(ms(second.p50_ms), "number"),
    cell(ms(second.p90_ms), "number"),
    cell(ms(second.p99_ms), "number"),
    cell(ms(second.max_ms), "number"),
  );
  return row;
}

function add(second) {
  rows.push(second);
  rates[0].push(second.second);
  rates[1].push(second.rps);
  latencies[0].push(second.second);
  latencies[1].push(second.p50_ms);
  latencies[2].push(second.p90_ms);
  latencies[3].push(second.p99_ms);
  redraw();
  refreshSoon();
}

function describe(run) {
  const { spec, progress } = run;
  const pace = progress.rate ? `${progress.rate} req/s` : "as fast as it can (closed model)";
  // A duration is kept as given: "30s", "2m", or a number of seconds.
  const lasting = typeof spec.duration === "number" ? `${spec.duration} s` : spec.duration;
  const until = spec.requests ? `${spec.requests} requests` : (lasting ?? "10 s");
  document.getElementById("target").textContent =
    `${spec.method} ${spec.url}: ${pace} over ${progress.connections} connections, ${until}`;
}

/** Service and corrected latency side by side: the corrected one counts the time a request
 * waited for its turn (coordinated omission), only an open model has it. */
function latencyRow(kind, figures) {
  const row = document.getElementById(kind);
  const label = row.firstElementChild;
  const names = ["min", "p50", "p90", "p99", "p99_9", "max"];
  row.replaceChildren(label, ...names.map((name) => cell(ms(figures?.[name]), "number")));
}

function showFigures(run) {
  showActions(run.state);
  describe(run);
  const { stats } = run;
  document.getElementById("requests").textContent = `${run.progress.requests}`;
  document.getElementById("rps").textContent = `${run.progress.rps ?? "–"}`;
  for (const name of ["p50", "p90", "p99"]) {
    document.getElementById(name).textContent = `${ms(stats?.latency_ms[name])} ms`;
  }
  document.getElementById("p99c").textContent = `${ms(stats?.corrected_latency_ms?.p99)} ms`;
  latencyRow("service", stats?.latency_ms);
  latencyRow("corrected", stats?.corrected_latency_ms);
  document.getElementById("errors").textContent = `${run.progress.errors}`;
  const kinds = Object.entries(stats?.errors_by_kind ?? {}).filter(([, count]) => count > 0);
  document.getElementById("errors-by-kind").textContent = kinds.length
    ? `Errors by kind: ${kinds.map(([kind, count]) => `${kind} ${count}`).join(", ")}`
    : "";
  showSideProbe(stats?.probe);
  document.getElementById("rate").placeholder = `${run.progress.rate ?? "closed model"}`;
  document.getElementById("connections").placeholder = `${run.progress.connections ?? ""}`;
  const control = document.getElementById("control");
  const ended = ENDED.has(run.state); // nothing left to change
  control.hidden = ended || (!run.progress.rate && run.progress.connections === null);
  document.getElementById("rate").disabled = !run.progress.rate; // a closed model has no rate
}

/** What a fresh client sees meanwhile: the side probe's figures, when the run has one. */
function showSideProbe(probe) {
  const line = document.getElementById("side-probe");
  line.hidden = !probe;
  if (!probe) return;
  line.textContent =
    `Side probe (a fresh connection every ${probe.interval_s} s): ${probe.count} probes, ` +
    `p50 ${ms(probe.p50)} ms, p99 ${ms(probe.p99)} ms, max ${ms(probe.max)} ms, ${probe.errors} failed`;
}

// A run's state ends before its summary is written (a sharded run's stop waits up to 6 s for
// its shards): an ended run is read on until it settles, then no more.
const SETTLE_MS = 8000;
let over = false; // ended, and unchanged since it settled: nothing will change any more
let endedAt = null;
let lastUpdated = null;

async function refresh() {
  if (over) return;
  try {
    const run = await api(`load-runs/${id}`);
    showFigures(run);
    solved("read");
    if (ENDED.has(run.state)) {
      endedAt ??= Date.now();
      over = Date.now() - endedAt >= SETTLE_MS && run.updated_at === lastUpdated;
    }
    lastUpdated = run.updated_at;
  } catch (error) {
    problem(error.status === 404 ? `Load run ${id} does not exist (any more).` : error.message, "read");
  }
}

// A new second: the figures too, but at most once a second whatever the replay delivers.
let refreshing = null;
function refreshSoon() {
  if (refreshing) return;
  refreshing = setTimeout(() => {
    refreshing = null;
    refresh();
  }, 1000);
}

async function change(event) {
  event.preventDefault();
  const form = event.target;
  const wanted = {};
  for (const name of ["rate", "connections"]) {
    const input = form.elements[name];
    if (!input.disabled && input.value !== "") wanted[name] = Number(input.value);
  }
  try {
    showFigures(
      await api(`load-runs/${id}`, {
        method: "PATCH",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(wanted),
      }),
    );
    problem(null);
  } catch (error) {
    problem(`Change refused: ${error.message}`);
  }
}

function follow() {
  const events = new EventSource(`${document.body.dataset.root}/api/v1/load-runs/${id}/events?after=-1`);
  events.addEventListener("second", (event) => add(JSON.parse(event.data)));
  events.addEventListener("state", (event) => {
    if (ENDED.has(JSON.parse(event.data).state)) events.close(); // over: nothing more comes
    refresh();
  });
}

for (const button of document.querySelectorAll("#actions button")) {
  button.addEventListener("click", () => act(button, `load-runs/${id}`, showFigures));
}
document.getElementById("control").addEventListener("submit", change);
await refresh();
follow();
setInterval(refresh, FIGURES_EVERY_MS);
