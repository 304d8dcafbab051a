// The overview: experiments (a page at a time, each with its heartbeat strip and figures),
// load runs and bots, kept current by the events feed and a slow refresh.
import { api, cell, latest, ms, plannedProbes, problem, root, solved, stateBadge, when } from "./api.js";

const REFRESH_MS = 5000; // progress moves without a state event: read again this often
const PAGE = 50;
const RECENT = 30;
const TYPING_WAIT_MS = 250;
const EVENTS_WAIT_MS = 300;
const BOTS_NAMED = 10;

const filters = document.getElementById("filters");

/** Newer / Older buttons over a list read a page at a time, newest first. */
class Pager {
  constructor(prefix) {
    this.prefix = prefix;
    this.page = 0;
    this.pages = 1;
    this.button("newer").addEventListener("click", () => this.turn(-1));
    this.button("older").addEventListener("click", () => this.turn(1));
  }

  button(which) {
    return document.getElementById(`${this.prefix}${which}`);
  }

  get offset() {
    return this.page * PAGE;
  }

  /** Show where the page is among `count` items in all. */
  show(count) {
    this.pages = Math.max(1, Math.ceil(count / PAGE));
    document.getElementById(`${this.prefix}page`).textContent = `page ${this.page + 1} of ${this.pages} (${count})`;
    this.button("newer").disabled = this.page === 0;
    this.button("older").disabled = this.page + 1 >= this.pages;
  }

  turn(by) {
    this.page = Math.min(Math.max(0, this.page + by), this.pages - 1);
    refresh();
  }
}

const experimentPages = new Pager("");
const runPages = new Pager("runs-");

function link(kind, id) {
  const a = document.createElement("a");
  a.href = `${root}/ui/${kind}/${id}`;
  a.textContent = `${id}`;
  return a;
}

/** Uptime Kuma's bar: green, amber when slower than the experiment's own p99, red on error. */
function heartbeat(summary) {
  const strip = document.createElement("span");
  strip.className = "heartbeat";
  for (const result of summary.recent) {
    const beat = document.createElement("i");
    const slow = summary.p99_ms !== null && result.latency_ms > summary.p99_ms;
    beat.className = result.error ? "beat-bad" : slow ? "beat-slow" : "beat-ok";
    beat.title = `#${result.seq} ${when(result.timestamp)}: ${result.error ?? `${ms(result.latency_ms)} ms`}`;
    strip.append(beat);
  }
  return strip;
}

function experimentRow(summary) {
  const { experiment } = summary;
  const { settings } = experiment;
  const row = document.createElement("tr");
  row.dataset.id = experiment.id;
  const id = cell("");
  id.append(link("experiments", experiment.id));
  const state = cell("");
  state.append(stateBadge(experiment.state));
  const beats = cell("");
  beats.append(heartbeat(summary));
  const errorRate = summary.count ? `${((100 * summary.errors) / summary.count).toFixed(1)} %` : "–";
  row.append(
    id,
    state,
    cell(`${settings.scheme}://${settings.host}:${settings.port}${settings.path}`),
    beats,
    cell(ms(summary.p50_ms), "number"),
    cell(ms(summary.p99_ms), "number"),
    cell(errorRate, "number"),
    cell(`${experiment.done} / ${plannedProbes(settings)}`, "number"),
  );
  return row;
}

const showExperiments = latest(async (isLatest) => {
  const query = new URLSearchParams({ offset: `${experimentPages.offset}`, limit: `${PAGE}`, recent: `${RECENT}` });
  const state = filters.elements.state.value;
  const host = filters.elements.host.value.trim();
  if (state) query.set("state", state);
  if (host) query.set("host", host);
  const found = await api(`overview/experiments?${query}`);
  if (!isLatest()) return; // the filter or page changed meanwhile: a later call draws it
  document.querySelector("#experiments tbody").replaceChildren(...found.data.map(experimentRow));
  document.getElementById("experiments-empty").hidden = found.data.length > 0;
  experimentPages.show(found.count);
});

function loadRunRow(run) {
  const row = document.createElement("tr");
  const state = cell("");
  state.append(stateBadge(run.state));
  const rate = run.progress.rate ? `${run.progress.rate} req/s` : "as fast as it can";
  const id = cell("");
  id.append(link("load-runs", run.id));
  row.dataset.id = run.id;
  const { stats } = run;
  const measured = stats?.requests ? stats.rps.toFixed(0) : "–";
  const p99 = stats?.requests ? ms(stats.latency_ms.p99) : "–";
  row.append(
    id,
    state,
    cell(run.spec.url),
    cell(rate),
    cell(measured, "number"),
    cell(p99, "number"),
    cell(when(run.created_at)),
  );
  return row;
}

/** The built-in targets' answers, when they run in this server's process. */
function showTargets(targets) {
  document.getElementById("targets-section").hidden = !targets.here;
  if (!targets.here) return;
  const byClass = {};
  for (const statuses of Object.values(targets.by_method)) {
    for (const [status, count] of Object.entries(statuses)) byClass[status] = (byClass[status] ?? 0) + count;
  }
  const classes = Object.entries(byClass).filter(([, count]) => count > 0);
  const detail = classes.map(([status, count]) => `${status} ${count}`).join(", ");
  document.getElementById("targets").textContent =
    `${targets.requests} requests answered on port ${targets.port}${detail ? ` (${detail})` : ""}`;
}

/** How many bots run, and the first few with the number each is at. */
function showBots(bots) {
  const named = bots.data.map((bot) => `#${bot.id} at ${bot.last_number ?? bot.start_number}`);
  const more = bots.count > named.length ? ", …" : "";
  const which = named.length ? `: ${named.join(", ")}${more}` : "";
  document.getElementById("bots").textContent = `${bots.count} running${which}`;
}

async function showOthers() {
  const [runs, bots, targets] = await Promise.all([
    api(`overview/load-runs?offset=${runPages.offset}&limit=${PAGE}`),
    api(`bots?state=running&limit=${BOTS_NAMED}`),
    api("targets"),
  ]);
  showTargets(targets);
  document.querySelector("#load-runs tbody").replaceChildren(...runs.data.map(loadRunRow));
  document.getElementById("load-runs-empty").hidden = runs.count > 0;
  runPages.show(runs.count);
  showBots(bots);
}

async function refresh() {
  try {
    await Promise.all([showExperiments(), showOthers()]);
    solved("read");
  } catch (error) {
    problem(`Could not read the API: ${error.message}`, "read");
  }
}

/** `call`, at most once per `wait_ms`: the last of a burst of keystrokes or events. */
function debounced(call, wait_ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(call, wait_ms);
  };
}

function follow() {
  const events = new EventSource(`${root}/api/v1/events`);
  const soon = debounced(refresh, EVENTS_WAIT_MS); // a hundred jobs ending: one read
  events.addEventListener("state", soon);
  events.addEventListener("deleted", soon);
}

const typed = debounced(refresh, TYPING_WAIT_MS);
filters.addEventListener("input", () => {
  experimentPages.page = 0;
  typed();
});
filters.addEventListener("submit", (event) => event.preventDefault());
await refresh();
follow();
setInterval(refresh, REFRESH_MS);
