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
  });
  if (response.ok) {
    location.assign(response.url); // where the server sent us: a same-site path only
  } else {
    const body = await response.json().catch(() => ({}));
    problem(body.detail ?? `login failed (${response.status})`);
  }
});
