// Creates a job from the form through the API; a refusal's reasons go beside their fields.
import { logIn, problem, root } from "./api.js";

const form = document.getElementById("new-job");
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,2})?$/; // finite: e99 at most

function value(input) {
  const text = input.value.trim();
  switch (input.dataset.type) {
    case "bool":
      return input.checked;
    case "number":
      // Decimal only: "0x10" or "Infinity" go as typed, and the API says what is wrong.
      return text === "" ? undefined : DECIMAL.test(text) ? Number(text) : text;
    case "list":
      return text === "" ? undefined : text.split(",").map((part) => part.trim());
    default:
      return text === "" ? undefined : text;
  }
}

function body() {
  const fields = {};
  for (const input of form.querySelectorAll("input[data-type]")) {
    const given = value(input);
    if (given !== undefined) fields[input.name] = given;
  }
  return fields;
}

function showErrors(errors) {
  for (const small of form.querySelectorAll(".field-error")) small.textContent = "";
  const elsewhere = [];
  for (const error of errors) {
    const field = form.querySelector(`.field-error[data-for="${CSS.escape(`${error.loc.at(1) ?? ""}`)}"]`);
    if (field) field.textContent = error.msg;
    else elsewhere.push(`${error.loc.slice(1).join(".") || "body"}: ${error.msg}`);
  }
  problem(elsewhere.length ? elsewhere.join("; ") : "Some fields need another value: see below.");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const start = form.elements.start.checked;
  let response;
  try {
    response = await fetch(`${root}/api/v1/${form.dataset.endpoint}?start=${start}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body()),
      credentials: "same-origin",
    });
  } catch (error) {
    problem(`Could not reach the server (${error.message}): is it running?`);
    return;
  }
  if (response.status === 422) {
    showErrors((await response.json()).detail);
    return;
  }
  if (response.status === 401) {
    logIn();
    return;
  }
  if (!response.ok) {
    const { detail } = await response.json().catch(() => ({}));
    problem(`The server answered ${response.status}: ${detail ?? response.statusText}`);
    return;
  }
  const made = await response.json();
  location.assign(`${root}/ui/${form.dataset.page}/${made.id}`);
});
