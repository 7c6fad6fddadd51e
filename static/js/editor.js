// Template editor: build a question set, check it against the server's rules as you type,
// keep the draft in this browser, export it as JSON or start a session with it.

import { enterRoom, lastName, NAME_MAX } from "/static/js/creator.js";
import { t, tn } from "/static/js/i18n.js";
import { sayLimits } from "/static/js/limits.js";
import { el } from "/static/js/room/dom.js";

const DRAFT_KEY = "stackvote:editor:draft";
const CHECK_DELAY_MS = 400;
const RETRY_MS = 5000;
const MAX_FILE_BYTES = 1024 * 1024;
const ID_LIMIT = 40;
// What the editor knows how to show; anything else in a loaded file is left out (and said so).
const TEMPLATE_KEYS = ["id", "title", "description", "scale", "favourite", "stacks", "cases"];

const config = JSON.parse(document.getElementById("editor-data").textContent);
const builtins = new Map(config.builtins.map((template) => [template.id, template]));

const $ = (id) => document.getElementById(id);
const titleInput = $("set-title");
const descriptionInput = $("set-description");
const scaleInputs = [0, 1, 2, 3, 4].map((n) => $(`scale-${n}`));
const favouriteSelect = $("set-favourite");
const stacksList = $("stacks");
const casesList = $("cases");
const startMessage = $("start-message");
const undoButton = $("undo-load");
const checkStatus = $("check-status");
const checkList = $("check-list");
const sessionForm = $("session-form");
const sessionError = $("session-error");
const sessionSubmit = $("session-submit");

// --- the draft

let nextKey = 1;
const newKey = () => `k${nextKey++}`;

/** The draft: stacks and cases carry a key of their own, so renaming an id keeps weights. */
let draft = blankDraft();
let previousDraft = null;

function blankDraft() {
  const stack = { key: newKey(), id: "", name: "", idTouched: false };
  return {
    id: null,
    title: "",
    description: "",
    scale: [...config.scale],
    favourite: null,
    stacks: [stack],
    cases: [{ key: newKey(), id: "", title: "", help: "", fit: new Map(), idTouched: false }],
  };
}

const text = (value) => (typeof value === "string" ? value : value == null ? "" : String(value));

/** A draft from a template object (built-in, pasted or a file); `dropped` lists what was left out. */
function draftFrom(template) {
  const dropped = Object.keys(template).filter((key) => !TEMPLATE_KEYS.includes(key));
  const stacks = (Array.isArray(template.stacks) ? template.stacks : []).map((stack) => ({
    key: newKey(),
    id: text(stack && stack.id),
    name: text(stack && stack.name),
    idTouched: true,
  }));
  // Weights go to the first stack with their id (a later one with the same id is an error).
  const byId = new Map(stacks.map((stack) => [stack.id, stack.key]).reverse());
  const cases = (Array.isArray(template.cases) ? template.cases : []).map((item) => {
    const fit = new Map();
    const weights = item && typeof item.fit === "object" && item.fit ? item.fit : {};
    for (const [stackId, weight] of Object.entries(weights)) {
      if (byId.has(stackId)) fit.set(byId.get(stackId), text(weight));
      else dropped.push(`${text(item.id) || "?"}.fit.${stackId}`);
    }
    return {
      key: newKey(),
      id: text(item && item.id),
      title: text(item && item.title),
      help: text(item && item.help),
      fit,
      idTouched: true,
    };
  });
  const scale = Array.isArray(template.scale) ? template.scale.map(text) : [...config.scale];
  while (scale.length < 5) scale.push("");
  return {
    id: typeof template.id === "string" && !builtins.has(template.id) ? template.id : null,
    title: text(template.title),
    description: text(template.description),
    scale: scale.slice(0, 5),
    favourite: byId.get(template.favourite) || null,
    stacks,
    cases,
    dropped,
  };
}

/** A weight as typed: a number when it reads as one, else the text (the server says why not). */
function weightValue(raw) {
  const typed = raw.trim().replace(/\u2212/g, "-").replace(",", ".");
  return /^[-+]?(\d+\.?\d*|\.\d+)$/.test(typed) ? Number(typed) : raw;
}

/** The template object the draft stands for: what is checked, exported and sent. */
function templateOf(d) {
  const idOf = new Map(d.stacks.map((stack) => [stack.key, stack.id]));
  const template = {};
  if (d.id) template.id = d.id;
  template.title = d.title;
  if (d.description) template.description = d.description;
  template.scale = [...d.scale];
  if (d.favourite && idOf.has(d.favourite)) template.favourite = idOf.get(d.favourite);
  template.stacks = d.stacks.map((stack) => ({ id: stack.id, name: stack.name }));
  template.cases = d.cases.map((item) => {
    const fit = {};
    for (const stack of d.stacks) {
      const raw = item.fit.get(stack.key);
      if (raw !== undefined && raw.trim() !== "") fit[stack.id] = weightValue(raw);
    }
    const out = { id: item.id, title: item.title };
    if (item.help) out.help = item.help;
    out.fit = fit;
    return out;
  });
  return template;
}

/** lower_case_id from a name, unique among `taken`; `fallback` when the name has no letters. */
function makeId(name, taken, fallback) {
  let id = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "");
  if (!/^[a-z]/.test(id)) id = id ? `${fallback}_${id}` : fallback;
  id = id.slice(0, ID_LIMIT - 3);
  let unique = id;
  for (let n = 2; taken.has(unique); n += 1) unique = `${id}_${n}`;
  return unique;
}

function autoId(items, item, name, fallback) {
  if (item.idTouched) return;
  const taken = new Set(items.filter((other) => other !== item).map((other) => other.id));
  item.id = makeId(name, taken, fallback);
}

// --- keeping the draft

function save() {
  try {
    localStorage.setItem(DRAFT_KEY, JSON.stringify({ template: templateOf(draft) }));
  } catch {
    // Private windows and full storage refuse; the draft then lives as long as the page.
  }
}

function restore() {
  try {
    const saved = JSON.parse(localStorage.getItem(DRAFT_KEY) || "null");
    if (saved && saved.template && typeof saved.template === "object") {
      return draftFrom(saved.template);
    }
  } catch {
    // A damaged draft is as good as none.
  }
  return null;
}

function changed() {
  save();
  scheduleCheck();
}

// --- drawing

function field(labelText, input, extraClass = "") {
  const label = el("label", { class: "field__label", for: input.id, text: labelText });
  return el("div", { class: `field ${extraClass}`.trim() }, label, input);
}

/**
 * The field a stack or question is named by (`nameField`: "name" or "title") and its id
 * field. The id follows the name until someone edits it by hand; `onName` runs after each
 * change of the name.
 */
function nameAndId(items, item, prefix, nameField, fallback, onName = () => {}) {
  const nameInput = el("input", {
    class: "input",
    id: `${prefix}-${item.key}-${nameField}`,
    type: "text",
    autocomplete: "off",
    value: item[nameField],
    dataset: { field: nameField },
  });
  const idInput = el("input", {
    class: "input input--mono",
    id: `${prefix}-${item.key}-id`,
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    value: item.id,
    dataset: { field: "id" },
  });
  nameInput.addEventListener("input", () => {
    item[nameField] = nameInput.value;
    autoId(items, item, nameInput.value, fallback);
    idInput.value = item.id;
    onName();
    changed();
  });
  idInput.addEventListener("input", () => {
    item.id = idInput.value;
    item.idTouched = true;
    changed();
  });
  return [nameInput, idInput];
}

function stackRow(stack, index) {
  const [nameInput, idInput] = nameAndId(
    draft.stacks,
    stack,
    "stack",
    "name",
    "stack",
    refreshStackNames,
  );
  const remove = el("button", {
    class: "button button--small button--danger",
    type: "button",
    text: t("Remove"),
    "aria-label": t("Remove stack {number}", { number: index + 1 }),
    dataset: { action: "remove-stack" },
  });
  remove.addEventListener("click", () => removeStack(index));
  const number = index + 1;
  // Visible labels stay short; the hidden part tells a screen reader which stack it is in.
  const label = (input, visible, hidden) =>
    el(
      "label",
      { class: "field__label", for: input.id },
      visible,
      el("span", { class: "visually-hidden", text: hidden }),
    );
  return el(
    "li",
    { class: "editor__stack", dataset: { key: stack.key } },
    el("span", { class: "editor__stack-number", "aria-hidden": "true", text: `${number}` }),
    el(
      "div",
      { class: "field" },
      label(nameInput, t("Name"), " " + t("of stack {number}", { number })),
      nameInput,
    ),
    el(
      "div",
      { class: "field editor__id" },
      label(idInput, t("Id"), " " + t("of stack {number}", { number })),
      idInput,
    ),
    remove,
  );
}

function caseCard(item, index) {
  const count = draft.cases.length;
  const number = index + 1;
  const [titleField, idField] = nameAndId(draft.cases, item, "case", "title", "question");
  const helpField = el("textarea", {
    class: "input editor__text",
    id: `case-${item.key}-help`,
    rows: "2",
    dataset: { field: "help" },
  });
  helpField.value = item.help;
  helpField.addEventListener("input", () => {
    item.help = helpField.value;
    changed();
  });

  const weights = draft.stacks.map((stack) => {
    const input = el("input", {
      class: "input editor__weight",
      id: `weight-${item.key}-${stack.key}`,
      type: "text",
      inputmode: "decimal",
      autocomplete: "off",
      placeholder: "0",
      value: item.fit.get(stack.key) ?? "",
      dataset: { weight: stack.key },
    });
    input.addEventListener("input", () => {
      if (input.value.trim() === "") item.fit.delete(stack.key);
      else item.fit.set(stack.key, input.value);
      changed();
    });
    return el(
      "div",
      { class: "field editor__weight-field" },
      el("label", {
        class: "editor__weight-label",
        for: input.id,
        text: stack.name || stack.id || "?",
        dataset: { stackLabel: stack.key },
      }),
      input,
    );
  });

  const button = (label, action, disabled, onClick) => {
    const node = el("button", {
      class: "button button--small",
      type: "button",
      text: label.text,
      "aria-label": label.aria,
      disabled,
      dataset: { action },
    });
    node.addEventListener("click", onClick);
    return node;
  };
  const tools = el(
    "div",
    { class: "editor__tools" },
    button(
      { text: t("Up"), aria: t("Move question {number} up", { number }) },
      "up",
      index === 0,
      () => moveCase(index, -1),
    ),
    button(
      { text: t("Down"), aria: t("Move question {number} down", { number }) },
      "down",
      index === count - 1,
      () => moveCase(index, 1),
    ),
    button(
      { text: t("Remove"), aria: t("Remove question {number}", { number }) },
      "remove-case",
      false,
      () => removeCase(index),
    ),
  );
  tools.lastChild.classList.add("button--danger");

  const headingId = `case-${item.key}-heading`;
  return el(
    "li",
    { class: "editor__case", dataset: { key: item.key, testid: "case" }, "aria-labelledby": headingId },
    el(
      "div",
      { class: "editor__case-head" },
      el("h3", { class: "editor__case-title", id: headingId, text: t("Question {number}", { number }) }),
      tools,
    ),
    field(t("Question"), titleField),
    field(t("Explanation (optional)"), helpField),
    field(t("Id"), idField, "editor__id"),
    el(
      "fieldset",
      { class: "fieldset editor__weights", dataset: { field: "fit" } },
      el("legend", { class: "field__label", text: t("Weights, from −2 to +2") }),
      el("div", { class: "editor__weight-grid" }, weights),
    ),
  );
}

function refreshStackNames() {
  for (const label of document.querySelectorAll("[data-stack-label]")) {
    const stack = draft.stacks.find((s) => s.key === label.dataset.stackLabel);
    if (stack) label.textContent = stack.name || stack.id || "?";
  }
  const chosen = draft.favourite;
  favouriteSelect.replaceChildren(
    el("option", { value: "", text: t("No stack in particular") }),
    ...draft.stacks.map((stack) =>
      el("option", { value: stack.key, text: stack.name || stack.id || "?" }),
    ),
  );
  favouriteSelect.value = chosen && draft.stacks.some((s) => s.key === chosen) ? chosen : "";
}

function render() {
  titleInput.value = draft.title;
  descriptionInput.value = draft.description;
  scaleInputs.forEach((input, n) => {
    input.value = draft.scale[n] ?? "";
  });
  stacksList.replaceChildren(...draft.stacks.map(stackRow));
  casesList.replaceChildren(...draft.cases.map(caseCard));
  $("stacks-count").textContent = `(${draft.stacks.length})`;
  $("cases-count").textContent = `(${draft.cases.length})`;
  refreshStackNames();
  showProblems([]);
}

/** Redraw after a change of shape, then put focus where the person expects it. */
function reshaped(focusSelector) {
  render();
  changed();
  const target = focusSelector && document.querySelector(focusSelector);
  if (target) target.focus();
}

// --- changes of shape

function addStack() {
  const stack = { key: newKey(), id: "", name: "", idTouched: false };
  autoId(draft.stacks, stack, "", "stack");
  draft.stacks.push(stack);
  reshaped(`#stack-${stack.key}-name`);
}

function removeStack(index) {
  const [gone] = draft.stacks.splice(index, 1);
  for (const item of draft.cases) item.fit.delete(gone.key);
  if (draft.favourite === gone.key) draft.favourite = null;
  const next = draft.stacks[index] || draft.stacks[index - 1];
  reshaped(next ? `#stack-${next.key}-name` : "#add-stack");
}

function addCase() {
  const item = { key: newKey(), id: "", title: "", help: "", fit: new Map(), idTouched: false };
  autoId(draft.cases, item, "", "question");
  draft.cases.push(item);
  reshaped(`#case-${item.key}-title`);
}

function removeCase(index) {
  draft.cases.splice(index, 1);
  const next = draft.cases[index] || draft.cases[index - 1];
  reshaped(next ? `#case-${next.key}-title` : "#add-case");
}

function moveCase(index, step) {
  const to = index + step;
  const [item] = draft.cases.splice(index, 1);
  draft.cases.splice(to, 0, item);
  const card = `[data-key="${item.key}"]`;
  const edge = to === 0 || to === draft.cases.length - 1;
  const action = edge ? (step < 0 ? "down" : "up") : step < 0 ? "up" : "down";
  reshaped(`${card} [data-action="${action}"]`);
}

// --- loading

function load(template, what) {
  previousDraft = draft;
  draft = draftFrom(template);
  const dropped = draft.dropped;
  delete draft.dropped;
  render();
  changed();
  let message = t("Loaded {what}.", { what });
  if (dropped.length) {
    message += " " + t("Left out what the editor cannot show: {items}.", { items: dropped.join(", ") });
  }
  say(message, true);
}

function say(message, undoable = false) {
  startMessage.textContent = message;
  undoButton.hidden = !undoable;
}

function loadText(raw, what) {
  let parsed;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    say(t("That isn't valid JSON: {reason}", { reason: err.message }));
    return;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    say(t("A question set is one JSON object, starting with { and ending with }."));
    return;
  }
  load(parsed, what);
}

$("load-builtin").addEventListener("click", () => {
  const template = builtins.get($("start-builtin").value);
  if (template) load(template, `“${template.title}”`);
});
$("start-blank").addEventListener("click", () => {
  previousDraft = draft;
  draft = blankDraft();
  render();
  changed();
  say(t("Started a blank set."), true);
  titleInput.focus();
});
$("load-paste").addEventListener("click", () => loadText($("start-paste").value, t("the pasted set")));
$("start-file").addEventListener("change", async (event) => {
  const file = event.target.files && event.target.files[0];
  if (!file) return;
  if (file.size > MAX_FILE_BYTES) {
    say(t("That file is too large to be a question set."));
    return;
  }
  loadText(await file.text(), `“${file.name}”`);
  event.target.value = "";
});
undoButton.addEventListener("click", () => {
  if (!previousDraft) return;
  [draft, previousDraft] = [previousDraft, null];
  render();
  changed();
  say(t("Brought back your earlier draft."));
  titleInput.focus();
});

titleInput.addEventListener("input", () => {
  draft.title = titleInput.value;
  changed();
});
descriptionInput.addEventListener("input", () => {
  draft.description = descriptionInput.value;
  changed();
});
scaleInputs.forEach((input, n) =>
  input.addEventListener("input", () => {
    draft.scale[n] = input.value;
    changed();
  }),
);
favouriteSelect.addEventListener("change", () => {
  draft.favourite = favouriteSelect.value || null;
  changed();
});
$("add-stack").addEventListener("click", addStack);
$("add-case").addEventListener("click", addCase);

// --- checking, by the server's own rules

let checkTimer = null;
let checkSeq = 0;
let problems = [];
let checkedOk = false;

function scheduleCheck() {
  clearTimeout(checkTimer);
  checkedOk = false;
  // Until the answer comes the last verdict stays up, dimmed, rather than a "checking" flicker.
  checkStatus.dataset.state = "checking";
  checkStatus.setAttribute("aria-busy", "true");
  if (!checkStatus.textContent) checkStatus.textContent = t("Checking…");
  checkTimer = setTimeout(check, CHECK_DELAY_MS);
}

/** Say how the set stands; unchanged words are not set again, so they are not re-announced. */
function setCheckStatus(state, words) {
  checkStatus.dataset.state = state;
  checkStatus.removeAttribute("aria-busy");
  if (checkStatus.textContent !== words) checkStatus.textContent = words;
}

async function check() {
  const seq = ++checkSeq;
  let response;
  try {
    response = await fetch(config.validate, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(templateOf(draft)),
    });
  } catch {
    if (seq !== checkSeq) return;
    setCheckStatus("offline", t("The server could not be reached to check this set. Trying again soon."));
    checkTimer = setTimeout(check, RETRY_MS);
    return;
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A proxy's error page is not JSON; the status code still says what happened.
  }
  if (seq !== checkSeq) return;
  if (response.ok && body?.ok === false && Array.isArray(body.errors)) {
    showProblems(body.errors);
  } else if (response.ok) {
    checkedOk = true;
    showProblems([]);
  } else if (response.status === 400 && body && Array.isArray(body.errors)) {
    showProblems(body.errors);
  } else if (response.status === 429) {
    setCheckStatus("paused", t("Checks are paused for a moment; they resume by themselves."));
    checkTimer = setTimeout(check, RETRY_MS);
  } else {
    const message = body && typeof body.error === "string" ? body.error : null;
    showProblems([
      { path: "", message: message || t("The server could not check this set ({status}).", { status: response.status }) },
    ]);
  }
}

/** The input (or the part of the page) a problem's path names. */
function targetOf(path) {
  const parts = path.split(".");
  const [head, index, name, stackId] = parts;
  if (parts.length === 1 && head === "title") return titleInput;
  if (parts.length === 1 && head === "description") return descriptionInput;
  if (parts.length === 1 && head === "favourite") return favouriteSelect;
  if (head === "scale") return parts.length === 2 ? scaleInputs[Number(index)] : $("scale");
  const list = head === "stacks" ? stacksList : head === "cases" ? casesList : null;
  if (!list) return null;
  if (parts.length === 1) return list;
  const row = list.children[Number(index)];
  if (!row) return list;
  if (head === "cases" && name === "fit" && stackId !== undefined) {
    const stack = draft.stacks.find((s) => s.id === stackId);
    const input = stack && row.querySelector(`[data-weight="${stack.key}"]`);
    return input || row.querySelector('[data-field="fit"]');
  }
  return (name && row.querySelector(`[data-field="${name}"]`)) || row;
}

/** Where a problem sits, in words: "Question 2 · Question", "Stack 1 · Id". */
function placeOf(path) {
  const [head, index, name, stackId] = path.split(".");
  const fieldName = {
    title: t("Question"),
    help: t("Explanation"),
    id: t("Id"),
    name: t("Name"),
    fit: t("Weights"),
  };
  if (head === "title") return t("Title");
  if (head === "description") return t("Description");
  if (head === "favourite") return t("Wins a tie");
  if (head === "scale") return index === undefined ? t("Scale labels") : t("Scale label {n}", { n: index });
  if (head === "stacks" || head === "cases") {
    if (index === undefined) return head === "stacks" ? t("Stacks") : t("Questions");
    const number = Number(index) + 1;
    const item = head === "stacks" ? t("Stack {number}", { number }) : t("Question {number}", { number });
    if (!name) return item;
    if (name === "fit" && stackId !== undefined) {
      const stack = draft.stacks.find((s) => s.id === stackId);
      return item + " · " + t("Weight for {stack}", { stack: (stack && stack.name) || stackId });
    }
    return `${item} · ${fieldName[name] || name}`;
  }
  return head ? head : t("The set");
}

let problemCount = 0;

function clearProblems() {
  for (const node of document.querySelectorAll(".editor__error")) node.remove();
  for (const node of document.querySelectorAll("[aria-invalid]")) {
    node.removeAttribute("aria-invalid");
    const original = node.dataset.describedby;
    if (original) node.setAttribute("aria-describedby", original);
    else node.removeAttribute("aria-describedby");
  }
}

function showProblems(found) {
  problems = found;
  if (!found.length) sessionError.textContent = "";
  clearProblems();
  checkList.replaceChildren();
  for (const problem of found) {
    problemCount += 1;
    const errorId = `problem-${problemCount}`;
    const target = targetOf(problem.path);
    const message = el("p", { class: "editor__error", id: errorId, text: problem.message });
    const focusable = target && target.matches("input, select, textarea") ? target : null;
    if (focusable) {
      if (!focusable.hasAttribute("aria-invalid")) {
        const original = focusable.getAttribute("aria-describedby");
        if (original) focusable.dataset.describedby = original;
      }
      focusable.setAttribute("aria-invalid", "true");
      const described = focusable.getAttribute("aria-describedby");
      focusable.setAttribute("aria-describedby", described ? `${described} ${errorId}` : errorId);
      focusable.insertAdjacentElement("afterend", message);
    } else if (target && target.matches("ol")) {
      target.insertAdjacentElement("afterend", message);
    } else if (target) {
      target.prepend(message);
    }
    const link = el("a", {
      href: focusable ? `#${focusable.id}` : "#check",
      text: `${placeOf(problem.path)}: ${problem.message}`,
    });
    link.addEventListener("click", (event) => {
      if (!focusable) return;
      event.preventDefault();
      focusable.focus();
      focusable.scrollIntoView({ block: "center" });
    });
    checkList.append(el("li", {}, link));
  }
  if (found.length) {
    setCheckStatus("problems", tn("{count} thing to fix:", "{count} things to fix:", found.length));
  } else if (checkedOk) {
    setCheckStatus("ok", t("All good: this set can be used for a session."));
  }
}

// --- export

function slug(value) {
  const made = value
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60)
    .replace(/-+$/, "");
  return made || "untitled";
}

$("export").addEventListener("click", () => {
  const template = templateOf(draft);
  const blob = new Blob([`${JSON.stringify(template, null, 2)}\n`], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: `stackvote-template-${slug(draft.title)}.json`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
});

// --- a session from the set

function sessionFailed(message) {
  sessionError.textContent = message;
  sessionSubmit.disabled = false;
  sessionSubmit.textContent = t("Create session");
}

sessionForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionError.textContent = "";
  if (!checkedOk) {
    // The last edit may not have been checked yet: check it now, so the list below is current.
    clearTimeout(checkTimer);
    await check();
  }
  if (problems.length) {
    sessionError.textContent = tn(
      "Fix the {count} thing listed under Check first.",
      "Fix the {count} things listed under Check first.",
      problems.length,
    );
    $("check").focus();
    return;
  }
  const name = $("session-name").value.trim() || draft.title.trim();
  if (!name) {
    sessionError.textContent = t("Give the session a title so people know what they're scoring.");
    $("session-name").focus();
    return;
  }
  const data = new FormData(sessionForm);
  const body = {
    title: name.slice(0, 120),
    template: templateOf(draft),
    mode: data.get("mode") === "open" ? "open" : "hidden",
    anonymous: data.get("anonymous") !== null,
  };
  sessionSubmit.disabled = true;
  sessionSubmit.textContent = t("Creating…");
  let response;
  let created = null;
  try {
    response = await fetch(sessionForm.dataset.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    created = await response.json();
  } catch {
    if (!response) {
      sessionFailed(t("We couldn't reach the server. Check your connection and try again."));
      return;
    }
  }
  if (!response.ok) {
    const message = created && typeof created.error === "string" ? created.error : null;
    sessionFailed(message || t("The server said no ({status}). Please try again.", { status: response.status }));
    return;
  }
  if (!created || typeof created.facilitator_url !== "string") {
    sessionFailed(t("The server answered in a way we didn't expect. Please try again."));
    return;
  }
  enterRoom(created, body.title, $("creator-name").value.trim().slice(0, NAME_MAX));
});

$("creator-name").value ||= lastName();

window.addEventListener("pageshow", () => {
  sessionSubmit.disabled = false;
  sessionSubmit.textContent = t("Create session");
});

// --- start: the saved draft, or the first built-in set

const restored = restore();
if (restored) {
  delete restored.dropped;
  draft = restored;
  say(t("Your draft from last time is back."));
} else {
  const first = config.builtins[0];
  draft = first ? draftFrom(first) : blankDraft();
  delete draft.dropped;
  if (first) say(t("Started from “{title}”. Load another set or start blank above.", { title: first.title }));
}
render();
scheduleCheck();
sayLimits();
