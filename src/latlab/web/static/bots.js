// Bots: every bot, newest first, with its numbers; start one, stop one.
import { api, cell, latest, problem, solved, stateBadge, when } from "./api.js";

const REFRESH_MS = 1000; // a bot counts once a second
const PAGE = 1000;

function stopButton(bot) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Stop";
  button.dataset.stop = bot.id;
  button.addEventListener("click", async () => {
    try {
      await api(`bots/${bot.id}/stop`, { method: "POST" });
      refresh();
    } catch (error) {
      problem(`stop: ${error.message}`);
    }
  });
  return button;
}

function botRow(bot) {
  const row = document.createElement("tr");
  row.dataset.id = bot.id;
  const state = cell("");
  state.append(stateBadge(bot.state));
  const action = cell("");
  if (bot.state === "running") action.append(stopButton(bot));
  row.append(
    cell(`${bot.id}`),
    state,
    cell(`${bot.start_number}`, "number"),
    cell(`${bot.last_number ?? "–"}`, "number"),
    cell(when(bot.started_at)),
    cell(bot.ended_at ? when(bot.ended_at) : "still alive"),
    cell(bot.duration_s.toFixed(0), "number"),
    action,
  );
  return row;
}

const refresh = latest(async (isLatest) => {
  try {
    const { count } = await api("bots?limit=1");
    const page = await api(`bots?offset=${Math.max(0, count - PAGE)}&limit=${PAGE}`);
    if (!isLatest()) return;
    const bots = page.data.sort((a, b) => b.id - a.id);
    document.querySelector("#bots tbody").replaceChildren(...bots.map(botRow));
    document.getElementById("bots-empty").hidden = bots.length > 0;
    solved("read");
  } catch (error) {
    problem(`Could not read the API: ${error.message}`, "read");
  }
});

document.getElementById("start-bot").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = event.target.elements.start_number.value.trim();
  const number = Number(text);
  try {
    await api("bots", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ start_number: text === "" || Number.isNaN(number) ? text : number }),
    });
    problem(null);
    refresh();
  } catch (error) {
    problem(`start: ${error.message}`);
  }
});
await refresh();
setInterval(refresh, REFRESH_MS);
