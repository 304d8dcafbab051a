// Two experiments or load runs side by side: their percentile curves on one log-scale chart
// and their figures with the difference. The pair is in the URL (?a=experiments/1&b=…).
import { api, cell, ms, problem, root } from "./api.js";
import { sizedChart, uPlot } from "./charts.js";

const form = document.getElementById("pick");
const box = document.getElementById("curves");
const FIGURES = ["p50", "p90", "p99", "p99_9", "max"];
// Where a tick goes on 1 / (1 − percentile): 0 %, 90 %, 99 %, 99.9 %, …
const NINES = [1, 10, 100, 1e3, 1e4, 1e5, 1e6];

/** `{name, rows: [{value_ms, percentile}], figures: {p50: ms, …}, count}` of a job. */
async function side(path) {
  if (path.startsWith("experiments/")) {
    const [curve, stats] = await Promise.all([api(`${path}/percentiles`), api(`${path}/stats`)]);
    const figures = Object.fromEntries(FIGURES.map((name) => [name, stats[`${name}_ms`]]));
    return { name: `experiment ${path.split("/")[1]}`, rows: curve.data, figures, count: stats.count };
  }
  const run = await api(path);
  const figures = Object.fromEntries(FIGURES.map((name) => [name, run.stats?.latency_ms[name] ?? null]));
  const count = run.stats?.requests ?? 0;
  return { name: `load run ${path.split("/")[1]}`, rows: run.stats?.percentiles ?? [], figures, count };
}

const x = (percentile) => 1 / (1 - percentile);
// 100 % is at infinity on this scale: the curve stops at the last finite step (max is below).
const drawable = (rows) => rows.filter((row) => row.percentile < 1);
const tick = (t) => `${Number((100 - 100 / t).toFixed(4))}%`;

function draw(a, b) {
  const tables = [a, b].map((one) => {
    const rows = drawable(one.rows);
    return [rows.map((row) => x(row.percentile)), rows.map((row) => row.value_ms)];
  });
  const data = uPlot.join(tables);
  box.replaceChildren();
  sizedChart(
    box,
    {
      scales: { x: { time: false, distr: 3, log: 10 } },
      axes: [
        {
          label: "percentile",
          splits: (_, __, min, max) => NINES.filter((t) => t >= min && t <= max),
          values: (_, ticks) => ticks.map(tick),
        },
        { label: "ms" },
      ],
      series: [
        {},
        { label: a.name, stroke: "#2a7ae2", spanGaps: true },
        { label: b.name, stroke: "#d64545", spanGaps: true },
      ],
    },
    data,
  );
  box.dataset.points = `${tables[0][0].length + tables[1][0].length}`;
}

function summarize(a, b) {
  document.getElementById("a-name").textContent = a.name;
  document.getElementById("b-name").textContent = b.name;
  const rows = FIGURES.map((name) => {
    const [va, vb] = [a.figures[name], b.figures[name]];
    const both = va !== null && vb !== null;
    const row = document.createElement("tr");
    row.append(
      cell(name.replace("_", ".")),
      cell(ms(va), "number"),
      cell(ms(vb), "number"),
      cell(both ? `${vb - va >= 0 ? "+" : ""}${(vb - va).toFixed(2)}` : "–", "number"),
      cell(both && va > 0 ? `${(vb / va).toFixed(2)}×` : "–", "number"),
    );
    return row;
  });
  const counts = document.createElement("tr");
  counts.append(cell("count"), cell(`${a.count}`, "number"), cell(`${b.count}`, "number"), cell(""), cell(""));
  document.querySelector("#summary tbody").replaceChildren(counts, ...rows);
}

const JOB = /^(experiments|load-runs)\/[1-9]\d{0,18}$/; // what ?a= and ?b= may name

async function compare() {
  const query = new URLSearchParams(location.search);
  const [pathA, pathB] = [query.get("a"), query.get("b")];
  if (!pathA || !pathB) return;
  if (!JOB.test(pathA) || !JOB.test(pathB)) {
    problem("Name each side as experiments/ID or load-runs/ID.");
    return;
  }
  for (const [key, path] of [
    ["a", pathA],
    ["b", pathB],
  ]) {
    const [kind, id] = path.split("/");
    form.elements[`${key}_kind`].value = kind;
    form.elements[`${key}_id`].value = id;
  }
  try {
    const [a, b] = await Promise.all([side(pathA), side(pathB)]);
    draw(a, b);
    summarize(a, b);
    problem(null);
  } catch (error) {
    problem(`Could not compare: ${error.message}`);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const pick = (key) =>
    encodeURIComponent(`${form.elements[`${key}_kind`].value}/${form.elements[`${key}_id`].value.trim()}`);
  location.assign(`${root}/ui/compare?a=${pick("a")}&b=${pick("b")}`);
});
await compare();
