// What every page shares: the API's base, JSON calls that say what went wrong, formatting.

export const root = document.body.dataset.root ?? "";

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

async function detailOf(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return response.statusText;
  }
}

/** The JSON answer of `path` (under /api/v1 unless it starts with /), or an ApiError. */
export async function api(path, options = {}) {
  const url = root + (path.startsWith("/") ? path : `/api/v1/${path}`);
  const response = await fetch(url, { credentials: "same-origin", ...options });
  if (response.status === 401) {
    location.assign(`${root}/ui/login?next=${encodeURIComponent(location.pathname)}`);
  }
  if (!response.ok) {
    throw new ApiError(response.status, await detailOf(response));
  }
  return response.status === 204 ? null : response.json();
}

/** Show a problem above the page (null: clear it). */
export function problem(message) {
  const banner = document.getElementById("problem");
  banner.textContent = message ?? "";
  banner.hidden = !message;
}

export function ms(value) {
  if (value === null || value === undefined || value < 0) return "–";
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
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
