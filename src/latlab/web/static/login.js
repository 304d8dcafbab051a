// The token goes once to POST /ui/login, which sets the cookie; then on to where we were.
import { problem } from "./api.js";

const form = document.getElementById("login");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = Object.fromEntries(new FormData(form));
  const response = await fetch(form.action, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(fields),
    credentials: "same-origin",
    redirect: "manual", // the 303 sets the cookie; the page it names is loaded once, below
  });
  if (response.type === "opaqueredirect") {
    location.assign(fields.next); // a dashboard page: the server sanitized it into the form
  } else {
    const body = await response.json().catch(() => ({}));
    problem(body.detail ?? `login failed (${response.status})`);
  }
});
