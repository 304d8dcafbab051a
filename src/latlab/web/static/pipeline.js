// Pipeline runs: each client call with what became of its requests, newest first.
import { api, cell, ms, problem, solved, when } from "./api.js";

const REFRESH_MS = 2000;

const pair = (figures) => (figures ? `${ms(figures.p50)} / ${ms(figures.p99)}` : "–");
const count = (value) => (value === null || value === undefined ? "–" : `${value}`);

function runRow(run) {
  const row = document.createElement("tr");
  row.dataset.id = run.run_id;
  row.append(
    cell(run.run_id.slice(0, 8)),
    cell(when(run.started_at)),
    cell(count(run.requests), "number"),
    cell(`${run.acked}`, "number"),
    cell(count(run.received), "number"),
    cell(count(run.processed), "number"),
    cell(`${run.written}`, "number"),
    cell(pair(run.ack_latency_ms), "number"),
    cell(pair(run.end_to_end_latency_ms), "number"),
  );
  return row;
}

async function refresh() {
  try {
    const page = await api("pipeline-runs?limit=100");
    document.querySelector("#runs tbody").replaceChildren(...page.data.map(runRow));
    document.getElementById("runs-empty").hidden = page.data.length > 0;
    solved("read");
  } catch (error) {
    problem(`Could not read the API: ${error.message}`, "read");
  }
}

await refresh();
setInterval(refresh, REFRESH_MS);
