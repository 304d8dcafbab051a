// What every page shares: the API's base, JSON calls that say what went wrong, formatting.

export const root = document.body.dataset.root ?? "";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** The API's reason: its `detail`, or for a 422 each field and what is wrong with it. */
async function detailOf(response) {
  try {
    const { detail } = await response.json();
    if (typeof detail === "string") return detail;
    const said = (error) => {
      const field = `${error.loc.at(-1)}`;
      return error.msg.startsWith(field) ? error.msg : `${field}: ${error.msg}`;
    };
    return detail.map(said).join("; ");
  } catch {
    return response.statusText;
  }
}

/** To the login page, and back to this very page after it (its query too). */
export function logIn() {
  location.assign(`${root}/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`);
}

/** The JSON answer of `path` (under /api/v1 unless it starts with /), or an ApiError. */
export async function api(path, options = {}) {
  const url = root + (path.startsWith("/") ? path : `/api/v1/${path}`);
  const response = await fetch(url, { credentials: "same-origin", ...options });
  if (response.status === 401) logIn();
  if (!response.ok) {
    throw new ApiError(response.status, await detailOf(response));
  }
  return response.status === 204 ? null : response.json();
}

let problemFrom = null; // "read" (a refresh) or "action" (something the user did)

/** Show a problem above the page (null: clear it); `from` says whose it is. */
export function problem(message, from = "action") {
  const banner = document.getElementById("problem");
  banner.textContent = message ?? "";
  banner.hidden = !message;
  problemFrom = message ? from : null;
}

/** Clear the problem shown, if it was `from` there: a refresh that works again does not
 * hide what the user's last action was told. */
export function solved(from) {
  if (problemFrom === from) problem(null);
}

export function ms(value) {
  if (value === null || value === undefined || value < 0) return "–";
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
}

/** The probes an experiment makes in all: `count` at each of its locations. */
export function plannedProbes(settings) {
  return settings.count * (settings.locations?.length ?? 1);
}

export function when(iso) {
  return new Date(iso).toLocaleString();
}

/** A table cell with `text` (never parsed as HTML). */
export function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

export function stateBadge(state) {
  const badge = document.createElement("span");
  badge.className = `state state-${state}`;
  badge.textContent = state;
  return badge;
}

/** Enable the buttons of `#actions` that the job's `state` allows. */
export function showActions(state) {
  const badge = document.getElementById("state");
  badge.textContent = state;
  badge.className = `state state-${state}`;
  const allowed = {
    created: ["start", "stop", "delete"],
    running: ["pause", "stop", "delete"],
    paused: ["resume", "stop", "delete"],
  }[state] ?? ["delete"];
  for (const button of document.querySelectorAll("#actions button")) {
    button.disabled = !allowed.includes(button.dataset.action);
  }
}

/** The action of `button` on the job at `path` (asking first if it says so); `shown` gets
 * the job as it is after. Deleting goes back to the overview. */
export async function act(button, path, shown) {
  const { action, confirm: question } = button.dataset;
  if (question && !window.confirm(question)) return;
  try {
    if (action === "delete") {
      await api(path, { method: "DELETE" });
      location.assign(`${root}/ui/`);
      return;
    }
    shown(await api(`${path}/${action}`, { method: "POST" }));
    problem(null);
  } catch (error) {
    problem(`${action}: ${error.message}`);
  }
}

/** `work(isLatest)` where a call started later makes the earlier ones' `isLatest()` false:
 * a slow answer then draws nothing over a newer one. */
export function latest(work) {
  let calls = 0;
  return (...args) => {
    const call = ++calls;
    return work(() => call === calls, ...args);
  };
}
