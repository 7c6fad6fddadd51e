// Landing page: builds the create-session request and moves the creator into the room.

import { enterRoom, lastName, NAME_MAX } from "/static/js/creator.js";
import { t, tn } from "/static/js/i18n.js";
import { showRecent } from "/static/js/recent-list.js";
import { sayLimits } from "/static/js/limits.js";

const CUSTOM = "__custom__";

const EXAMPLE_TEMPLATE = {
  title: "Which database should we use?",
  description: "Score how strongly each need applies to this project.",
  scale: ["Does not apply", "Barely", "Somewhat", "Clearly", "Applies strongly"],
  favourite: "postgres",
  stacks: [
    { id: "postgres", name: "PostgreSQL" },
    { id: "sqlite", name: "SQLite" },
    { id: "mongo", name: "MongoDB" },
  ],
  cases: [
    {
      id: "relations",
      title: "Our data has many relations and needs joins",
      help: "Orders, customers, invoices that point at each other.",
      fit: { postgres: 2, sqlite: 1, mongo: -1 },
    },
    {
      id: "single_box",
      title: "It runs on a single small machine",
      help: "One process, no separate database server to operate.",
      fit: { sqlite: 2, postgres: -1 },
    },
    {
      id: "loose_shape",
      title: "Records change shape often",
      help: "Fields come and go faster than we want to write migrations.",
      fit: { mongo: 2, postgres: 1 },
    },
  ],
};

const form = document.getElementById("create-form");
const titleInput = document.getElementById("title");
const nameInput = document.getElementById("creator-name");
const templateSelect = document.getElementById("template");
const templateDescription = document.getElementById("template-description");
const customField = document.getElementById("custom-field");
const customInput = document.getElementById("custom-template");
const exampleButton = document.getElementById("custom-example");
const errorBox = document.getElementById("create-error");
const submitButton = document.getElementById("create-submit");

function showError(message, focusTarget) {
  errorBox.textContent = message;
  if (focusTarget) {
    focusTarget.setAttribute("aria-invalid", "true");
    focusTarget.focus();
  }
}

function clearError() {
  errorBox.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function syncTemplateChoice() {
  const option = templateSelect.selectedOptions[0];
  templateDescription.textContent = option ? option.dataset.description || "" : "";
  const custom = templateSelect.value === CUSTOM;
  customField.hidden = !custom;
  customInput.required = custom;
}

// Returns the template to send, or null after showing why the pasted JSON can't be used.
function readTemplate() {
  if (templateSelect.value !== CUSTOM) return templateSelect.value;
  const text = customInput.value.trim();
  if (!text) {
    showError(
      t("Paste your template JSON, or pick one of the ready-made question sets."),
      customInput,
    );
    return null;
  }
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    showError(t("That template isn't valid JSON: {detail}", { detail: err.message }), customInput);
    return null;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    showError(
      t("The template should be one JSON object, starting with {open} and ending with {close}.", {
        open: "{",
        close: "}",
      }),
      customInput,
    );
    return null;
  }
  return parsed;
}

async function createSession(body) {
  let response;
  try {
    response = await fetch(form.dataset.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    throw new Error(t("We couldn't reach the server. Check your connection and try again."));
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // A proxy error page is not JSON; the status line below still says what happened.
  }
  if (!response.ok) {
    const problems = Array.isArray(data?.errors) ? data.errors : [];
    if (problems.length) {
      // A pasted template is told everything it lacks, field by field, as the editor does.
      const lines = problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
      throw new Error(
        tn("The template has a problem: {problems}", "The template has {count} problems: {problems}", lines.length, {
          problems: lines.join("; "),
        }),
      );
    }
    const message = data && typeof data.error === "string" ? data.error : null;
    throw new Error(
      message || t("The server said no ({status}). Please try again.", { status: response.status }),
    );
  }
  if (!data || typeof data.facilitator_url !== "string") {
    throw new Error(t("The server answered in a way we didn't expect. Please try again."));
  }
  return data;
}

async function onSubmit(event) {
  event.preventDefault();
  clearError();

  const title = titleInput.value.trim();
  if (!title) {
    showError(t("Give the session a title so people know what they're scoring."), titleInput);
    return;
  }
  if (title.length > 120) {
    showError(t("Keep the title to {limit} characters or fewer.", { limit: 120 }), titleInput);
    return;
  }
  const name = nameInput.value.trim();
  if (!name) {
    showError(t("Please enter your name: the others will see it."), nameInput);
    return;
  }
  if (name.length > NAME_MAX) {
    showError(t("Please keep your name to {max} characters.", { max: NAME_MAX }), nameInput);
    return;
  }
  const template = readTemplate();
  if (template === null) return;

  const data = new FormData(form);
  const body = {
    title,
    template,
    mode: data.get("mode") === "open" ? "open" : "hidden",
    anonymous: data.get("anonymous") !== null,
  };

  submitButton.disabled = true;
  submitButton.textContent = t("Creating…");
  try {
    const created = await createSession(body);
    enterRoom(created, title, name);
  } catch (err) {
    showError(err.message);
    submitButton.disabled = false;
    submitButton.textContent = t("Create session");
  }
}

templateSelect.addEventListener("change", () => {
  // An error about the previous choice no longer applies.
  clearError();
  syncTemplateChoice();
nameInput.value ||= lastName();
showRecent(document.getElementById("recent"), document.getElementById("recent-list"));
});
exampleButton.addEventListener("click", () => {
  customInput.value = JSON.stringify(EXAMPLE_TEMPLATE, null, 2);
  customInput.focus();
});
form.addEventListener("submit", onSubmit);
// Browsers may restore the previous selection on back/forward; reflect it.
window.addEventListener("pageshow", () => {
  syncTemplateChoice();
nameInput.value ||= lastName();
showRecent(document.getElementById("recent"), document.getElementById("recent-list"));
  submitButton.disabled = false;
  submitButton.textContent = t("Create session");
});
syncTemplateChoice();
nameInput.value ||= lastName();
showRecent(document.getElementById("recent"), document.getElementById("recent-list"));
sayLimits();
